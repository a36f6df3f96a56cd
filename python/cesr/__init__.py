"""cesr: exact expected losses of linear stochastic optimizers on linear regression.

The expected loss of SGD, heavy ball, Nesterov, AccSGD and any other linear
method on linear regression with Gaussian covariates and diagonal covariance,
computed exactly (no sampling) by cesr's C++ library; its contraction rate,
tuned hyperparameters, the compute-efficiency frontier across batch sizes, and
Monte Carlo checks. Numpy arrays in and out. See docs/python.md.

    >>> import cesr
    >>> sp = cesr.Spectrum.powerlaw(d=100, alpha=1.5)
    >>> m = cesr.method("hb", lr=0.1, momentum=0.9)
    >>> cesr.rate(sp, m, batch=8).stable
    True
"""

import json as _json
import math as _math

import numpy as _np

from . import _cesr

__version__ = _cesr.__version__

__all__ = [
    "Spectrum", "Method", "method", "custom", "methods",
    "loss", "steps", "rate", "stability", "tune", "frontier", "simulate", "check", "problem",
    "LossCurve", "StepsResult", "RateResult", "StabilityResult", "TuneResult", "FrontierResult",
    "SimulationResult", "CheckResult", "ProblemResult",
]


def _number_text(x):
    """A number as the CLI's spectrum text writes it: 1.5, 2, 10000, 1e-05."""
    x = float(x)
    if x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


# --------------------------------------------------------------------------
# Spectrum


class Spectrum:
    """Eigenvalues of the diagonal covariance H and initial second moments E[e_0,i^2].

    Spectrum(eigenvalues, init=None): your own eigenvalues (any 1-D array of
    positive numbers); init is None (isotropic: all ones), an array of the same
    length, or the CLI's text ("isotropic", "powerlaw:beta=1", "file:PATH").
    The arrays are copied once; .eigenvalues and .init are read-only views.

    Spectrum.powerlaw(d=, alpha=), Spectrum.loguniform(d=, kappa=),
    Spectrum.file(path) and Spectrum.parse(text) make the CLI's spectra and
    remember the CLI's text for them (.text, e.g. "powerlaw:d=100,alpha=1.5").
    """

    __slots__ = ("_native", "_recipe")

    def __init__(self, eigenvalues, init=None, *, weights=None, name=None):
        self._native = _cesr.NativeSpectrum.from_arrays(eigenvalues, init, name or "", "", weights)
        self._recipe = None

    @classmethod
    def _wrap(cls, native, recipe=None):
        obj = cls.__new__(cls)
        obj._native = native
        obj._recipe = recipe  # (base spectrum, noise model, scale, covariance, precondition) or None
        return obj

    def with_noise_model(self, model="additive", *, scale=1.0, covariance=None):
        """The same problem under another gradient-noise model (the CLI's --noise-model,
        --noise-scale, --noise-covariance): 'additive' is the noisy quadratic model,
        gradient noise of covariance C/B with C = scale * H, or the diagonal
        `covariance` (an array or 'file:PATH' / 'npy:PATH', one C_ii per eigenvalue).
        Every function run on the result uses it; kurtosis and noise do not apply."""
        base, _, _, _, gamma = self._recipe or (self, None, None, None, 0.0)
        if isinstance(covariance, str) or covariance is None:
            cov = covariance
        else:
            cov = _np.array(covariance, dtype=float)
        native = base._native.with_problem(str(model), float(scale), cov, float(gamma))
        return Spectrum._wrap(native, (base, str(model), float(scale), cov, float(gamma)))

    def preconditioned(self, gamma):
        """The problem with the gradient multiplied by (lambda_i/lambda_max)^-gamma in
        direction i (the CLI's --precondition power:p=gamma, 0 <= gamma <= 1), as the
        equivalent problem lambda_i -> p_i lambda_i, init_i -> init_i / p_i."""
        base, model, scale, cov, old = self._recipe or (self, "multiplicative", 1.0, None, 0.0)
        if old:
            raise ValueError("precondition: the spectrum is already preconditioned")
        native = base._native.with_problem(model, scale, cov, float(gamma))
        return Spectrum._wrap(native, (base, model, scale, cov, float(gamma)))

    @classmethod
    def parse(cls, text, init=None):
        """A spectrum from the CLI's --spectrum text (powerlaw:..., loguniform:..., file:PATH)."""
        if not isinstance(text, str):
            raise TypeError(f"spectrum text must be a str, got {type(text).__name__}")
        if init is None or isinstance(init, str):
            return cls._wrap(_cesr.NativeSpectrum.from_text(text, init or "isotropic"))
        plain = _cesr.NativeSpectrum.from_text(text, "isotropic")
        return cls._wrap(_cesr.NativeSpectrum.from_arrays(plain.eigenvalues, init, text, "", plain.weights))

    @classmethod
    def _generated(cls, kind, d, shape, value, scale, init):
        """The CLI's KIND:d=D,SHAPE=VALUE[,scale=S] spectrum."""
        text = f"{kind}:d={_count_text('d', d)},{shape}={_number_text(value)}"
        if scale is not None:
            text += f",scale={_number_text(scale)}"
        return cls.parse(text, init)

    @classmethod
    def powerlaw(cls, d, alpha, scale=None, init=None):
        """lambda_i = scale * i^-alpha, i = 1..d (the CLI's powerlaw:d=D,alpha=A[,scale=S])."""
        return cls._generated("powerlaw", d, "alpha", alpha, scale, init)

    @classmethod
    def loguniform(cls, d, kappa, scale=None, init=None):
        """lambda_i = scale * kappa^(-(i-1)/(d-1)) (the CLI's loguniform:d=D,kappa=K[,scale=S])."""
        return cls._generated("loguniform", d, "kappa", kappa, scale, init)

    @classmethod
    def file(cls, path, init=None):
        """One eigenvalue per line of a text file ('#' comments), or 'lambda w' (w directions), as the CLI's file:PATH."""
        return cls.parse(f"file:{path}", init)

    @classmethod
    def npy(cls, path, init=None):
        """A 1-D float64/float32 .npy array of eigenvalues, as the CLI's npy:PATH."""
        return cls.parse(f"npy:{path}", init)

    def with_init(self, init):
        """The same eigenvalues with other initial moments (array or CLI text)."""
        if self._recipe is not None:
            base, model, scale, cov, gamma = self._recipe
            out = base.with_init(init)
            if gamma:
                out = out.preconditioned(gamma)
            return out.with_noise_model(model, scale=scale, covariance=cov) if model == "additive" else out
        if isinstance(init, str) and not self.text.startswith("array:"):
            return Spectrum.parse(self.text, init)
        return Spectrum._wrap(_cesr.NativeSpectrum.from_arrays(self.eigenvalues, init, self.text, "", self.weights))

    eigenvalues = property(lambda self: self._native.eigenvalues, doc="eigenvalues of H (read-only numpy view)")
    init = property(lambda self: self._native.init, doc="E[e_0,i^2] (read-only numpy view)")
    text = property(lambda self: self._native.text, doc="the CLI's --spectrum text (array:d=N for arrays)")
    init_text = property(lambda self: self._native.init_text, doc="the CLI's --init text ('array' for arrays)")
    d = property(lambda self: self._native.d, doc="dimension")
    lambda_max = property(lambda self: self._native.lambda_max)
    lambda_min = property(lambda self: self._native.lambda_min)
    kappa = property(lambda self: self._native.kappa, doc="lambda_max / lambda_min")
    trace = property(lambda self: self._native.trace, doc="tr H")
    initial_loss = property(lambda self: self._native.initial_loss, doc="L_0 = 1/2 sum_i w_i lambda_i init_i")
    weights = property(lambda self: self._native.weights,
                       doc="directions per eigenvalue (file lines 'lambda w'), None when all are 1")
    directions = property(lambda self: self._native.directions, doc="sum of the weights (= d when unweighted)")
    fractional = property(lambda self: self._native.fractional, doc="some weight is not whole (a spectral measure)")
    noise_model = property(lambda self: self._native.noise_model, doc="'multiplicative' or 'additive'")
    noise_scale = property(lambda self: self._native.noise_scale, doc="additive model: c in C = c H")
    noise_covariance = property(lambda self: self._native.noise_covariance, doc="additive model: diagonal C, or None")
    precondition = property(lambda self: self._native.precondition, doc="gamma of the preconditioner applied (0: none)")

    def __len__(self):
        return self.d

    def to_dict(self):
        return {"spectrum": self.text, "init": self.init_text, "d": self.d, "lambda_max": self.lambda_max,
                "lambda_min": self.lambda_min, "trace": self.trace, "kappa": self.kappa,
                "initial_loss": self.initial_loss}

    def __repr__(self):
        init = "" if self.init_text == "isotropic" else f", init={self.init_text!r}"
        return f"Spectrum({self.text!r}{init}, d={self.d}, kappa={self.kappa:.4g})"

    def __eq__(self, other):
        if not isinstance(other, Spectrum):
            return NotImplemented
        return (self.text == other.text and self.init_text == other.init_text
                and _np.array_equal(self.eigenvalues, other.eigenvalues) and _np.array_equal(self.init, other.init)
                and _np.array_equal(self.weights, other.weights) and self.noise_model == other.noise_model
                and self.noise_scale == other.noise_scale and self.precondition == other.precondition
                and _np.array_equal(self.noise_covariance, other.noise_covariance))

    __hash__ = None

    def __reduce__(self):
        if self._recipe is not None:
            base, model, scale, cov, gamma = self._recipe
            return (_spectrum_from_recipe, (base, model, scale, cov, gamma))
        if self.weights is not None:
            return (_spectrum_from_arrays, (_np.array(self.eigenvalues), _np.array(self.init), self.text, self.init_text,
                                            _np.array(self.weights)))
        # Generated spectra travel as their text (they regenerate bit for bit);
        # arrays and files travel as their values (a worker may not see the file).
        generated = self.text.startswith(("powerlaw:", "loguniform:"))
        if generated and self.init_text != "array" and not self.init_text.startswith("file:"):
            return (Spectrum.parse, (self.text, self.init_text))
        return (_spectrum_from_arrays, (_np.array(self.eigenvalues), _np.array(self.init), self.text, self.init_text))


def _spectrum_from_arrays(eigenvalues, init, text, init_text, weights=None):
    return Spectrum._wrap(_cesr.NativeSpectrum.from_arrays(eigenvalues, init, text, init_text, weights))


def _spectrum_from_recipe(base, model, scale, cov, gamma):
    return Spectrum._wrap(base._native.with_problem(model, scale, cov, gamma), (base, model, scale, cov, gamma))


def _count_text(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, _np.integer)):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
    if v < 1:
        raise ValueError(f"{name} must be >= 1, got {v}")
    return str(int(v))


def _spectrum_arg(spectrum, init=None):
    if isinstance(spectrum, str):
        spectrum = Spectrum.parse(spectrum)
    elif not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum must be a cesr.Spectrum or the CLI's spectrum text, got {type(spectrum).__name__}")
    if init is not None:
        spectrum = spectrum.with_init(init)
    return spectrum


# --------------------------------------------------------------------------
# Methods


class Method:
    """A validated method: a registry row with its hyperparameters (cesr.method)
    or a custom (P, q, r, o, s0) (cesr.custom), optionally averaged."""

    __slots__ = ("_native",)

    def __init__(self, *args, **kwargs):
        raise TypeError("make methods with cesr.method(name, **hyperparameters) or cesr.custom(P, q, r, o)")

    @classmethod
    def _wrap(cls, native):
        obj = object.__new__(cls)
        obj._native = native
        return obj

    name = property(lambda self: self._native.name, doc="registry name ('custom' for cesr.custom)")
    average = property(lambda self: self._native.average or None, doc="ema:decay=G | polyak | tail:start=S | None")
    lr_schedule = property(lambda self: self._native.lr_schedule, doc="the lr factor schedule's text, or None")
    momentum_schedule = property(lambda self: self._native.momentum_schedule, doc="the momentum schedule's text, or None")
    states = property(lambda self: self._native.states, doc="number of state vectors k (averaging included)")
    constant = property(lambda self: self._native.constant, doc="the coefficients are the same at every step")
    has_rate = property(lambda self: self._native.has_rate,
                        doc="the coefficients are constant from step 1 on, so the method has a contraction rate")

    @property
    def params(self):
        """Every hyperparameter with its value (given or default), in registry order."""
        return self._native.params(True)

    @property
    def given(self):
        """The hyperparameters as given."""
        return self._native.params(False)

    @property
    def coefficients(self):
        """(P, q, r, o, s0) of step 0 as numpy arrays (averaging included)."""
        return self._native.coefficients

    def describe(self):
        """The one-line text the CLI prints, e.g. 'hb(lr=0.1, momentum=0.9)'."""
        return self._native.describe

    def replace(self, **changes):
        """The same method with some hyperparameters (or average=, lr_schedule=, momentum_schedule=) changed."""
        if self.name == "custom":
            raise ValueError("method: a custom method has no hyperparameters to replace")
        values = dict(self.given)
        options = {k: changes.pop(k, getattr(self, k)) for k in ("average", "lr_schedule", "momentum_schedule")}
        values.update(changes)
        return method(self.name, **options, **values)

    def to_dict(self):
        return {"name": self.name, "params": self.params, "average": self.average, "lr_schedule": self.lr_schedule,
                "momentum_schedule": self.momentum_schedule}

    def __repr__(self):
        return f"Method({self.describe()})"

    def __eq__(self, other):
        if not isinstance(other, Method):
            return NotImplemented
        return type(self) is type(other) and self.__reduce__()[1] == other.__reduce__()[1]

    __hash__ = None

    def __reduce__(self):
        return (_method_from_state, (self.name, tuple(sorted(self.given.items())), self.average, self.lr_schedule,
                                     self.momentum_schedule))


class _CustomMethod(Method):
    """A custom method keeps the arrays it was made from (for to_dict, pickling and ==)."""

    __slots__ = ("_arrays",)

    def to_dict(self):
        P, q, r, o, s0 = self._arrays
        return {"name": "custom", "params": {}, "average": self.average, "P": P.tolist(), "q": q.tolist(),
                "r": r.tolist(), "o": o.tolist(), "s0": s0.tolist()}

    def __eq__(self, other):
        if not isinstance(other, Method):
            return NotImplemented
        return (type(other) is _CustomMethod and self.average == other.average
                and all(_np.array_equal(a, b) for a, b in zip(self._arrays, other._arrays)))

    __hash__ = None

    def __reduce__(self):
        return (_custom_from_state, self._arrays + (self.average,))


def _method_from_state(name, given, average, lr_schedule=None, momentum_schedule=None):
    return method(name, average=average, lr_schedule=lr_schedule, momentum_schedule=momentum_schedule, **dict(given))


def _custom_from_state(P, q, r, o, s0, average):
    return custom(P, q, r, o, s0, average=average)


def method(name, *, average=None, lr_schedule=None, momentum_schedule=None, **hyperparameters):
    """A registry method with its hyperparameters, validated against the registry.

    cesr.method("hb", lr=0.1, momentum=0.9); cesr.method("sgd", lr=0.5, average="ema:decay=0.99").
    An unknown name raises ValueError naming `method` and listing the registry
    (cesr.methods()); a bad value raises ValueError naming the argument
    ("lr must be > 0, got -1"). Switches take bools (nesterov=True), choices
    their names (inner="torch-sgd"). average: "ema:decay=G", "polyak" or
    "tail:start=S". lr_schedule: the factor on lr at each step, as the CLI's
    --lr-schedule ("cosine:steps=1000,warmup=50", "cosine:warmup=5%" takes the
    run's steps, "wsd:...", "step:every=N,factor=G", "file:PATH", ...);
    momentum_schedule: "file:PATH" (replaces momentum). The shapes: docs/schedules.md.
    """
    if not isinstance(name, str):
        raise TypeError(f"method must be a registry name (str), got {type(name).__name__}")
    for key, value in (("average", average), ("lr_schedule", lr_schedule), ("momentum_schedule", momentum_schedule)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{key} must be a str (the CLI's text), got {type(value).__name__}")
    return Method._wrap(_cesr.NativeMethod.registry(name, hyperparameters, average, lr_schedule, momentum_schedule))


def custom(P, q, r, o, s0=None, *, average=None):
    """Any linear method with k <= 4 state vectors, s' = P s - q (x) g(r^T s), loss at e = o^T s.

    P is k x k, q, r, o and s0 (the initial state in units of e_0; default all
    ones) have k entries. See docs/methods.md for the convention.
    """
    native = _cesr.NativeMethod.custom(P, q, r, o, s0, average)
    m = object.__new__(_CustomMethod)
    m._native = native
    k = _np.asarray(P, dtype=float).shape[0]
    arrays = [_np.array(x, dtype=float) for x in (P, q, r, o)]
    arrays.append(_np.ones(k) if s0 is None else _np.array(s0, dtype=float))
    for a in arrays:
        a.setflags(write=False)
    m._arrays = tuple(arrays)
    return m


def _method_arg(m):
    if not isinstance(m, Method):
        raise TypeError(f"method must be a cesr.Method (cesr.method(...) or cesr.custom(...)), got {type(m).__name__}")
    return m._native


def methods():
    """The method registry, as `cesr methods --format json` prints it: a list of
    {"name", "states", "states_max", "constant", "rate", "description",
    "hyperparameters": [{"name", "flag", "default", "required", "range", "tuned",
    "search", "description"}]}."""
    return _cesr.methods()


# --------------------------------------------------------------------------
# Results


def _short(v):
    if isinstance(v, _np.ndarray):
        if v.size <= 6:
            return _np.array2string(v, precision=4, separator=", ")
        return f"array(n={v.size}, first={v[0]:.4g}, last={v[-1]:.4g})"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list) and len(v) > 4:
        return f"[{len(v)} items]"
    return repr(v)


class _Result:
    """Base of the result classes: named fields, a readable repr, to_dict(), ==, picklable."""

    _fields = ()
    _repr_fields = None

    def __init__(self, **values):
        for f in self._fields:
            setattr(self, f, values.get(f))

    def to_dict(self):
        """The fields as a dict (numpy arrays stay arrays; to_json_dict() gives lists)."""
        return {f: getattr(self, f) for f in self._fields}

    def to_json_dict(self):
        """The fields with arrays as lists and NaN as None (for json.dumps)."""
        def plain(v):
            if isinstance(v, _np.ndarray):
                return [plain(x) for x in v.tolist()]
            if isinstance(v, float) and not _math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            if isinstance(v, Method) or isinstance(v, Spectrum):
                return v.to_dict()
            return v
        return {f: plain(getattr(self, f)) for f in self._fields}

    def __repr__(self):
        fields = self._repr_fields or self._fields
        body = ", ".join(f"{f}={_short(getattr(self, f))}" for f in fields)
        return f"{type(self).__name__}({body})"

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        for f in self._fields:
            a, b = getattr(self, f), getattr(other, f)
            if isinstance(a, _np.ndarray) or isinstance(b, _np.ndarray):
                if not _np.array_equal(a, b, equal_nan=True):
                    return False
            elif a != b:
                return False
        return True

    __hash__ = None


class LossCurve(_Result):
    """Exact expected loss: .step, .loss (numpy), .diverged_at (None or the step where L_t overflowed)."""

    _fields = ("step", "loss", "diverged_at", "precision", "horizon", "certified", "samples")
    _repr_fields = ("step", "loss", "diverged_at", "precision", "horizon")


class StepsResult(_Result):
    """First step with L_t <= target: .steps (None if not reached or diverged), .loss at it;
    .loss_floor: the additive noise model's L_inf (None otherwise; a target at or below it is never reached)."""

    _fields = ("steps", "reached", "loss", "initial_loss", "steps_run", "diverged_at", "loss_text", "loss_floor",
               "precision", "horizon", "certified")
    _repr_fields = ("steps", "reached", "loss", "initial_loss", "diverged_at", "precision", "horizon")


class RateResult(_Result):
    """Contraction rate: .rho, .gap = 1 - rho, .stable, .precision (of the digits in .rho_text/.gap_text)."""

    _fields = ("rho", "gap", "stable", "precision", "evaluations", "rho_text", "gap_text")
    _repr_fields = ("rho", "gap", "stable", "precision")


class StabilityResult(_Result):
    """Largest stable step size .lr_max, the step size with the best gap .lr_best and that gap."""

    _fields = ("lr_max", "lr_best", "gap_best", "precision", "rate_evaluations", "secular_evaluations",
               "lr_max_text", "lr_best_text", "gap_best_text")
    _repr_fields = ("lr_max", "lr_best", "gap_best", "precision")


class TuneResult(_Result):
    """Tuned hyperparameters .params, the gap and steps there; .tuned_method() is the cesr.Method."""

    _fields = ("method", "batch", "objective", "params", "gap", "rho", "steps", "loss", "stable", "has_rate",
               "gap_text", "gap_precision", "evaluations", "rate_evaluations", "confirm_failed", "search",
               "all_params", "average", "lr_schedule", "momentum_schedule")
    _repr_fields = ("method", "batch", "objective", "params", "gap", "steps", "loss")

    def tuned_method(self):
        """The tuned point as a cesr.Method (to pass to loss, rate, simulate, ...), schedules included."""
        values = dict(self.all_params)
        if self.momentum_schedule:
            values.pop("momentum", None)  # the schedule holds it
        return method(self.method, average=self.average or None, lr_schedule=self.lr_schedule,
                      momentum_schedule=self.momentum_schedule, **values)


class FrontierResult(_Result):
    """Tuned frontier of one or several problems, in the CLI's one shape.

    .problems: the JSON list, one dict {"problem", "rows", "summary"} per
    problem (in the order given); .rows, .summary, .problem: those of the only
    problem (a ValueError when there are several: use .problems[i]);
    .to_json() is `cesr frontier ... --format json`; .to_pandas() and
    .summary_pandas() are the CLI's CSV (--format csv, --table summary) as
    pandas reads it. None where the JSON has null.
    """

    _fields = ("problems", "json", "table")
    _repr_fields = ("problems",)

    @classmethod
    def _from_native(cls, results):
        docs = [_json.loads(r["json"]) for r in results]
        # As the CLI prints the list: "[", the objects separated by ",", "]".
        text = "[\n" + ",\n".join(r["json"].rstrip("\n") for r in results) + "\n]\n"
        return cls(problems=docs, json=text, table="\n".join(r["table"] for r in results))

    def _only(self, key):
        if len(self.problems) != 1:
            raise ValueError(f"this frontier has {len(self.problems)} problems: use .problems[i][{key!r}]")
        return self.problems[0][key]

    @property
    def rows(self):
        """The rows of the only problem (list of dicts: method, batch, gap, steps, ce, params)."""
        return self._only("rows")

    @property
    def summary(self):
        """The summary of the only problem (per method best CE, critical batch, ...; the window)."""
        return self._only("summary")

    @property
    def problem(self):
        """The only problem's description (spectrum, init, d, lambda_max, ..., objective)."""
        return self._only("problem")

    def to_json(self):
        """The text `cesr frontier --spectrum A [--spectrum B ...] ... --format json` prints for the same problems."""
        return self.json

    def __str__(self):
        return self.table

    @staticmethod
    def _csv_name(text):
        # As the CLI's CSV writes a problem's spectrum and init: no commas, no '#'.
        return text.replace(",", ";").replace("#", "_")

    def _lead(self, i, doc):
        p = doc["problem"]
        lead = {"problem": i + 1, "spectrum": self._csv_name(p["spectrum"]), "init": self._csv_name(p["init"])}
        if p.get("objective") == "final":
            lead["samples"] = p["samples"]
        return lead

    def _pandas(self, records):
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - pandas is optional
            raise ImportError("FrontierResult.to_pandas needs pandas (Debian: python3-pandas)") from e
        df = pd.DataFrame.from_records(records)
        for col in df.columns:  # null numbers as NaN, as pandas reads the CLI's "nan"
            if col not in ("spectrum", "init", "method"):
                df[col] = pd.to_numeric(df[col])
        return df

    def to_pandas(self):
        """Every problem's rows as one DataFrame, the columns of `cesr frontier --format csv`: problem (1, 2, ...),
        spectrum, init, method, batch, gap, steps, ce and one column per tuned hyperparameter; needs pandas."""
        records = []
        for i, doc in enumerate(self.problems):
            params = []
            for r in doc["rows"]:
                for k in r["params"]:
                    if k not in params:
                        params.append(k)
            for r in doc["rows"]:
                rec = self._lead(i, doc)
                rec.update({k: v for k, v in r.items() if k != "params"})
                rec.update({k: r["params"].get(k) for k in params})
                records.append(rec)
        return self._pandas(records)

    def summary_pandas(self):
        """Every problem's summary as one DataFrame, as `cesr frontier --format csv --table summary`: one row per
        (problem, method) with best_ce, best_ce_batch, critical_batch, mccandlish_batch and the problem's
        window_ratio, sqrt_kappa, trace_over_max, kappa (final objective: best_loss, best_batch, critical_batch)."""
        records = []
        for i, doc in enumerate(self.problems):
            s = doc["summary"]
            final = doc["problem"].get("objective") == "final"
            for m, v in s["methods"].items():
                rec = self._lead(i, doc)
                rec["method"] = m
                rec.update(v)
                if not final:
                    rec.update({k: s[k] for k in ("window_ratio", "sqrt_kappa", "trace_over_max", "kappa")})
                records.append(rec)
        return self._pandas(records)

    def __repr__(self):
        parts = []
        for doc in self.problems:
            key = "best_loss" if doc["problem"].get("objective") == "final" else "best_ce"
            best = {m: s.get(key) for m, s in doc["summary"]["methods"].items()}
            crit = {m: s["critical_batch"] for m, s in doc["summary"]["methods"].items()}
            parts.append(f"{doc['problem']['spectrum']}: rows={len(doc['rows'])}, {key}={best}, critical_batch={crit}")
        return f"FrontierResult({'; '.join(parts)})"


class SimulationResult(_Result):
    """Monte Carlo beside the exact curve: .step, .theory, .mean, .stderr, .z (numpy arrays)."""

    _fields = ("step", "theory", "mean", "stderr", "z", "largest_share", "runs", "covariates", "kurtosis",
               "diverged_at")
    _repr_fields = ("step", "theory", "mean", "stderr", "runs", "diverged_at")


class CheckResult(_Result):
    """A curve held against the exact loss: .agree, .worst (the worst rows, dicts), .rows, .theory."""

    _fields = ("agree", "worst", "rows", "theory", "zmax", "z_rows", "rtol_rows", "within_3", "max_abs_z",
               "max_abs_rel_error", "failed", "diverged_at")
    _repr_fields = ("agree", "failed", "max_abs_z", "max_abs_rel_error", "zmax", "diverged_at")


class ProblemResult(_Result):
    """A problem from a data set (cesr.problem, as cesr problem).

    .eigenvalues (decreasing, null directions left out), .init = (u_i^T w*)^2
    for w_0 = 0 and .kurtosis = E[z_i^4] per direction; the weighted lines of
    PREFIX.spectrum (.line_eigenvalues, .line_weights, .line_init); .w_star and
    .intercept in the original coordinates; .summary, the dict of PREFIX.json
    (d, n, kappa, trace, noise, kurtosis_mean, kurtosis_min, kurtosis_max,
    null_directions, ...); .spectrum, a cesr.Spectrum of the eigenvalues and
    init, and .noise, .kurtosis_mean for the other functions' noise= and
    kurtosis=."""

    _fields = ("eigenvalues", "init", "kurtosis", "line_eigenvalues", "line_weights", "line_init", "w_star",
               "intercept", "summary")
    _repr_fields = ("eigenvalues", "init", "summary")

    @property
    def spectrum(self):
        return Spectrum(self.eigenvalues, self.init, name=f"problem:d={len(self.eigenvalues)}")

    noise = property(lambda self: self.summary["noise"], doc="label-noise variance sigma^2 = RSS / (n - rank)")
    kurtosis_mean = property(lambda self: self.summary["kurtosis_mean"], doc="mean of .kurtosis over directions")


# --------------------------------------------------------------------------
# Functions


def loss(spectrum, method, *, batch=None, steps, every=1, kurtosis=3.0, noise=0.0, precision="auto", rtol=1e-10,
         horizon="auto", horizon_rtol=1e-10, init=None, batch_schedule=None):
    """The exact expected loss L_t at t = 0, every, 2 every, ... and at t = steps (cesr loss).

    The defaults are the CLI's: precision="auto" (double alone where its
    running rounding bound certifies rtol / 2, else double, long, quad, mp50
    until two agree to rtol; or one of "double", "long", "quad", "mp50");
    horizon="auto" takes the certified spectral path for more than 32 d steps
    where it applies ("exact": only it, "stepping": only time stepping), to
    horizon_rtol. .precision and .horizon say which precision and which path
    answered, .certified whether double answered alone on its bound.
    Divergence is a result: the curve stops before the step where L_t
    overflows and .diverged_at holds that step (None otherwise). batch (default
    1) or batch_schedule ("ramp:start=B0,every=N,max=BMAX", "file:PATH"; then
    .samples holds the samples consumed before each step). A method's lr
    schedule that leaves out steps= runs over these steps.
    """
    sp = _spectrum_arg(spectrum, init)
    r = _cesr.loss(sp._native, _method_arg(method), batch, steps, every, kurtosis, noise, precision, rtol, horizon,
                   horizon_rtol, batch_schedule)
    return LossCurve(**r)


def steps(spectrum, method, *, batch=None, target, relative=False, max_steps=100_000_000, kurtosis=3.0, noise=0.0,
          precision="auto", rtol=1e-10, horizon="auto", horizon_rtol=1e-10, init=None, batch_schedule=None):
    """The first step t <= max_steps with L_t <= target (or target * L_0 when relative) (cesr steps).

    precision, rtol, horizon and horizon_rtol as in loss() and the CLI (the
    spectral path has no max_steps cap); .precision, .horizon and .certified
    say what answered."""
    sp = _spectrum_arg(spectrum, init)
    r = _cesr.steps(sp._native, _method_arg(method), batch, float(target), bool(relative), max_steps, kurtosis,
                    noise, precision, rtol, horizon, horizon_rtol, batch_schedule)
    return StepsResult(reached=r["steps"] is not None, **r)


def rate(spectrum, method, *, batch=None, kurtosis=3.0, noise=0.0, precision="auto", rtol=1e-10, threads=0,
         init=None):
    """The contraction rate rho and gap 1 - rho of the exact second-moment operator (cesr rate).

    precision="auto" (the default) escalates double, long, quad, mp50 until two
    successive precisions agree on the gap to rtol. An unstable method gives
    stable=False (rho >= 1), not an exception. threads: of the O(d) kernels
    for d >= 65536 (0: every core); the result does not depend on it.
    """
    sp = _spectrum_arg(spectrum, init)
    return RateResult(**_cesr.rate(sp._native, _method_arg(method), batch, kurtosis, noise, precision, rtol,
                                   threads))


def stability(spectrum, method, *, batch=None, average=None, kurtosis=3.0, noise=0.0, precision="auto", rtol=1e-10,
              init=None, **hyperparameters):
    """The largest stable step size and the step size with the best gap, the other
    hyperparameters fixed (cesr stability): stability(sp, "hb", batch=8, momentum=0.9)."""
    sp = _spectrum_arg(spectrum, init)
    return StabilityResult(**_cesr.stability(sp._native, method, hyperparameters, average, batch, kurtosis, noise,
                                             precision, rtol))


def tune(spectrum, method, *, batch=None, objective="rate", target=None, relative=None, max_steps=100_000_000,
         steps=None, search=None, average=None, lr_schedule=None, momentum_schedule=None, batch_schedule=None,
         kurtosis=3.0, noise=0.0, search_mode="fast", threads=0, init=None, **fixed):
    """The best hyperparameters of a registry method at one batch size (cesr tune).

    objective="rate" maximises the gap 1 - rho, "steps" minimises the exact
    steps to target (default 1e-6 relative to L_0), "final" minimises the exact
    loss L_T after steps=T (.loss). Hyperparameters given as keywords are held
    fixed (tune(sp, "hb", batch=8, momentum=0.9)); search={"lr": (lo, hi)}
    replaces a default search box. Schedules (the CLI's texts) are part of the
    problem and need the steps or final objective; the tuner scales the peak lr.
    search_mode="fast" (quasi-Newton on the exact gradient of the gap) or
    "global" (dense grid and Nelder-Mead), as cesr tune --search-mode; threads:
    of the rate's O(d) kernels (0: every core), the result does not depend on it.
    """
    sp = _spectrum_arg(spectrum, init)
    if isinstance(method, Method):
        raise TypeError("tune takes a registry name (e.g. 'hb'); fix hyperparameters as keywords")
    r = _cesr.tune(sp._native, method, batch, objective, None if target is None else float(target), relative,
                   max_steps, steps, fixed, search or {}, average, lr_schedule, momentum_schedule, batch_schedule,
                   kurtosis, noise, search_mode, threads)
    return TuneResult(**r)


def frontier(spectrum, methods=("sgd", "hb", "asgd"), batches=None, *, objective="rate", target=None, relative=None,
             max_steps=100_000_000, samples=None, search=None, average=None, lr_schedule=None, kurtosis=3.0, noise=0.0,
             threads=0, progress=None, search_mode="fast", init=None, **fixed):
    """Every method tuned at every batch size, and per method the best compute
    efficiency, the critical batch size and McCandlish's E_min/S_min (cesr frontier).

    spectrum: one problem (a cesr.Spectrum or the CLI's text) or a list of them
    (one problem each, as the CLI's repeated --spectrum); init: one for every
    problem or a list with one per spectrum. Hyperparameters given by name
    (momentum=0.9, lr=0.1, ...) are held fixed for the methods that have them
    (a ValueError when none has), the rest tuned per batch size.

    batches: a list of sizes or the CLI's text "1:65536:x2" (the default).
    objective="final" with samples=N: batch B runs floor(N/B) steps and rows
    hold the tuned loss L_T (one budget per call); lr_schedule (the CLI's text)
    applies to every method (the tuner scales its peak lr). search={"lr": (lo,
    hi)} replaces a search box where a method has it. progress(done, total) is
    called after each tuned (method, batch); Ctrl-C stops the sweep after the
    rows in progress. threads=0 uses every core; the result does not depend on it.
    search_mode="fast" continues each method's optimum along the batches
    (quasi-Newton on the exact gradient of the gap); "global" tunes every row
    on its own (dense grid and Nelder-Mead), as cesr frontier --search-mode.
    """
    several = isinstance(spectrum, (list, tuple))
    spectra = list(spectrum) if several else [spectrum]
    if not spectra:
        raise ValueError("spectrum: an empty list (give one spectrum or several)")
    if isinstance(init, (list, tuple)):
        if not several or len(init) != len(spectra):
            raise ValueError(f"init: a list of {len(init)} for {len(spectra)} spectra; give one init for every "
                             "problem or one per spectrum")
        inits = list(init)
    else:
        inits = [init] * len(spectra)
    problems = [_spectrum_arg(sp, i) for sp, i in zip(spectra, inits)]  # every problem checked before any work
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m]
    results = []
    for k, sp in enumerate(problems):
        report = progress
        if progress is not None and len(problems) > 1:
            # One count over every problem: (done, total) of the whole run.
            def report(done, total, k=k):
                progress(k * total + done, len(problems) * total)
        results.append(_cesr.frontier(sp._native, list(methods), batches, objective,
                                      None if target is None else float(target), relative, max_steps, samples, fixed,
                                      search or {}, average, lr_schedule, kurtosis, noise, threads, report,
                                      search_mode))
    return FrontierResult._from_native(results)


def simulate(spectrum, method, *, batch=None, steps, runs, seed=1, every=1, covariates="gaussian", kurtosis=None,
             noise=0.0, precision="double", threads=0, init=None, batch_schedule=None):
    """Monte Carlo of the real iteration (runs independent runs) beside the exact curve (cesr simulate).

    The theory column uses the fourth moment of the covariates' law unless
    kurtosis is given. The result depends on (seed, runs) only, never on threads.
    """
    sp = _spectrum_arg(spectrum, init)
    r = _cesr.simulate(sp._native, _method_arg(method), batch, steps, runs, seed, every, covariates,
                       None if kurtosis is None else float(kurtosis), noise, precision, threads, batch_schedule)
    return SimulationResult(**r)


def check(step, loss, stderr=None, *, spectrum, method, batch=None, kurtosis=3.0, noise=0.0, precision="double",
          rtol=0.05, alpha=1e-3, zmax=None, init=None, batch_schedule=None):
    """Your loss curve held against the exact expected loss (cesr check).

    Rows with a standard error (stderr, NaN for none) are judged by |z| against
    a Sidak-corrected threshold at family-wise level alpha (or zmax), the
    others by the relative error <= rtol. .agree, .worst (worst rows first).
    """
    sp = _spectrum_arg(spectrum, init)
    r = _cesr.check(step, loss, stderr, sp._native, _method_arg(method), batch, kurtosis, noise, precision,
                    rtol, alpha, zmax, batch_schedule)
    if r.get("rows") is None:  # the exact loss diverges
        return CheckResult(agree=False, worst=[], rows=[], theory=_np.empty(0), failed=0, diverged_at=r["diverged_at"])
    return CheckResult(**r)


def problem(X, y, center=False):
    """A problem from a data set (cesr problem): X (n rows, d columns) and labels y.

    H = X^T X / n (center=True: of the centred columns, with y centred too, a
    fit with an intercept), its eigendecomposition, w* by least squares in the
    eigenbasis (eigenvalues within a rounding bound of 0 are null directions,
    left out and counted), init = (u_i^T w*)^2 for w_0 = 0, sigma^2 = RSS / (n -
    rank [- 1 centred]) and the fourth moments of z_i = u_i^T x / sqrt(lambda_i).
    Returns a ProblemResult; r.spectrum, r.noise and r.kurtosis_mean go to
    the other functions.
    """
    X = _np.asarray(X, dtype=float)
    y = _np.asarray(y, dtype=float)
    if not isinstance(center, (bool, _np.bool_)):
        raise TypeError(f"center must be True or False, got {center!r}")
    r = _cesr.problem(X, y, bool(center))
    summary = _json.loads(r.pop("json"))
    for key in ("spectrum", "init"):
        summary.pop(key, None)
    r.pop("spectrum_text")
    r.pop("init_text")
    return ProblemResult(summary=summary, **r)
