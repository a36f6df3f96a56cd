// The method registry: one row per method, each with its hyperparameters and a
// factory from hyperparameters to coefficients (P_t, q_t, r_t, o, s0). The
// update each row stands for, and where it is published: docs/methods.md.
#include "cesr/method.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cesr/io.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace cesr {

namespace {

// --- factories -------------------------------------------------------------
// Each is written once for any Real; make_path decides in which precision a
// row is formed (constant rows in mp50, rounded once).

template <class Real>
Real hp(const MethodSpec& s, std::string_view field) {
  return static_cast<Real>(s.value(field));
}

template <class Real>
MethodPath<Real> sgd(const MethodSpec& s) {
  Method<Real> m;
  m.k = 1;
  m.P[0][0] = 1;
  m.q[0] = hp<Real>(s, "lr");
  m.r[0] = 1;
  m.o[0] = 1;
  return m;
}

// Heavy ball and Nesterov: state (e_t, e_{t-1}).
//   hb:  P = [[1+b, -b], [1, 0]], q = (eta, 0), r = o = (1, 0)
//   nag: as hb but the gradient at the look-ahead point, r = (1+b, -b)
template <class Real>
Method<Real> two_step(const MethodSpec& s, bool look_ahead) {
  const Real lr = hp<Real>(s, "lr"), b = hp<Real>(s, "momentum");
  Method<Real> m;
  m.k = 2;
  m.P[0] = {1 + b, -b};
  m.P[1] = {Real(1), Real(0)};
  m.q = {lr, Real(0)};
  m.o = {Real(1), Real(0)};
  if (look_ahead) m.r = {1 + b, -b};
  else m.r = {Real(1), Real(0)};
  return m;
}
template <class Real>
MethodPath<Real> heavy_ball(const MethodSpec& s) { return two_step<Real>(s, false); }
template <class Real>
MethodPath<Real> nesterov(const MethodSpec& s) { return two_step<Real>(s, true); }

// AccSGD exactly as Kidambi et al.'s optimizer (state: iterate, buffer):
//   L = lr kappa / c, alpha = 1 - c^2 xi / kappa, zeta = c / (c + 1 - alpha)
//   P = [[zeta + (1-zeta)(1-alpha), (1-zeta) alpha], [1-alpha, alpha]]
//   q = (zeta lr + (1-zeta)(1-alpha) L, (1-alpha) L), r = o = (1, 0)
template <class Real>
MethodPath<Real> accsgd(const MethodSpec& s) {
  const Real lr = hp<Real>(s, "lr"), kappa = hp<Real>(s, "kappa"), xi = hp<Real>(s, "xi");
  const Real c = hp<Real>(s, "small_const");
  const Real L = lr * kappa / c;
  const Real one_minus_alpha = c * c * xi / kappa;
  const Real alpha = 1 - one_minus_alpha;
  const Real zeta = c / (c + one_minus_alpha);
  Method<Real> m;
  m.k = 2;
  m.P[0] = {zeta + (1 - zeta) * one_minus_alpha, (1 - zeta) * alpha};
  m.P[1] = {one_minus_alpha, alpha};
  m.q = {zeta * lr + (1 - zeta) * one_minus_alpha * L, one_minus_alpha * L};
  m.r = {Real(1), Real(0)};
  m.o = {Real(1), Real(0)};
  return m;
}

template <class Real>
MethodPath<Real> custom(const MethodSpec& s) {
  return s.custom.template cast<Real>();
}

// torch.optim.SGD without weight decay, state (p, buf_{t-1}), buf starting at 0:
//   buf_t = mu buf_{t-1} + (1 - tau) g_t  (t >= 1),   buf_0 = g_0 (undamped)
//   p' = p - lr buf_t,   or with nesterov   p' = p - lr (g_t + mu buf_t)
// so for t >= 1
//   plain:    P = [[1, -lr mu], [0, mu]],   q = (lr (1-tau), -(1-tau))
//   nesterov: P = [[1, -lr mu^2], [0, mu]], q = (lr (1 + mu (1-tau)), -(1-tau))
// and at t = 0 the same with 1 - tau replaced by 1 (buf_0 = g_0).
template <class Real>
Method<Real> torch_sgd_step(const Real& lr, const Real& mu, const Real& damp, bool nesterov) {
  Method<Real> m;
  m.k = 2;
  m.P[0] = {Real(1), -lr * mu * (nesterov ? mu : Real(1))};
  m.P[1] = {Real(0), mu};
  m.q = {nesterov ? lr * (1 + mu * damp) : lr * damp, -damp};
  m.r = {Real(1), Real(0)};
  m.o = {Real(1), Real(0)};
  m.s0 = {Real(1), Real(0), Real(0), Real(0)};
  return m;
}
template <class Real>
MethodPath<Real> torch_sgd(const MethodSpec& s) {
  const Real lr = hp<Real>(s, "lr"), mu = hp<Real>(s, "momentum");
  // With momentum 0 torch.optim.SGD keeps no buffer (p -= lr g): dampening has no effect.
  const Real tau = mu == 0 ? Real(0) : hp<Real>(s, "dampening");
  const bool nest = s.value("nesterov") != 0;
  MethodPath<Real> path(torch_sgd_step<Real>(lr, mu, Real(1), nest));
  if (tau == 0) return path;  // the first step is like every other
  const Method<Real> tail = torch_sgd_step<Real>(lr, mu, 1 - tau, nest);
  const Method<Real> first = path.initial;
  path.at = [first, tail](std::uint64_t t, Method<Real>& m) { m = t == 0 ? first : tail; };
  path.constant_from = 1;
  return path;
}

// Quasi-hyperbolic momentum (Ma & Yarats 2019), state (theta, buf), buf_0 = 0:
//   buf' = beta buf + (1 - beta) g,   theta' = theta - lr [(1 - nu) g + nu buf']
//   P = [[1, -lr nu beta], [0, beta]],   q = (lr (1 - nu beta), -(1 - beta))
template <class Real>
MethodPath<Real> qhm(const MethodSpec& s) {
  const Real lr = hp<Real>(s, "lr"), beta = hp<Real>(s, "momentum"), nu = hp<Real>(s, "nu");
  Method<Real> m;
  m.k = 2;
  m.P[0] = {Real(1), -lr * nu * beta};
  m.P[1] = {Real(0), beta};
  m.q = {lr * (1 - nu * beta), -(1 - beta)};
  m.r = {Real(1), Real(0)};
  m.o = {Real(1), Real(0)};
  m.s0 = {Real(1), Real(0), Real(0), Real(0)};
  return m;
}

// Schedule-Free SGD (Defazio et al. 2024), state (x, z), x_0 = z_0 = w_0:
//   y_t = (1 - beta) z_t + beta x_t          (the gradient is taken at y)
//   z_{t+1} = z_t - lr g(y_t)
//   x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},  c_{t+1} = 1 / (t + 1)
// (the authors' default weighting c_{t+1} = lr_t^2 / sum_{s<=t} lr_s^2 at a
// constant step size), the loss at x:
//   P_t = [[1 - c, c], [0, 1]],  q_t = (c lr, lr),  r = (beta, 1 - beta),  o = (1, 0)
// Under a learning-rate schedule gamma_t = lr m_t the weights are the authors'
// c_{t+1} = M_t^2 / sum_{s<=t} M_s^2 with M_s = max_{u<=s} gamma_u (their
// lr_max and weight_sum), accumulated once along the steps.
template <class Real>
MethodPath<Real> schedule_free(const MethodSpec& s) {
  const Real lr = hp<Real>(s, "lr"), beta = hp<Real>(s, "momentum");
  Method<Real> m;
  m.k = 2;
  m.r = {beta, 1 - beta};
  m.o = {Real(1), Real(0)};
  m.P[1] = {Real(0), Real(1)};
  m.q[1] = lr;
  MethodPath<Real> path;
  path.constant_from = std::nullopt;
  if (s.lr_schedule.constant()) {
    const auto fill = [lr](std::uint64_t t, Method<Real>& c) {
      const Real w = Real(1) / Real(t + 1);
      c.P[0] = {1 - w, w};
      c.q[0] = w * lr;
    };
    fill(0, m);
    path.initial = m;
    path.at = fill;
    return path;
  }
  struct Weights {
    std::uint64_t next = 0;  // steps accumulated: 0..next-1
    Real max{}, sum{};
  };
  // The running sums live in the callable (mutable), so every copy of the path
  // -- one per Dynamics, one per simulation thread -- has its own.
  const Schedule schedule = s.lr_schedule;
  const auto fill = [lr, schedule, state = Weights{}](std::uint64_t t, Method<Real>& c) mutable {
    if (t + 1 < state.next) state = Weights{};  // asked for an earlier step: start over
    for (; state.next <= t; ++state.next) {
      const Real g = lr * static_cast<Real>(schedule.at(state.next));
      if (g > state.max) state.max = g;
      state.sum += state.max * state.max;
    }
    const Real gamma = lr * static_cast<Real>(schedule.at(t));
    const Real w = state.sum > 0 ? state.max * state.max / state.sum : Real(1);
    c.P[0] = {1 - w, w};
    c.q[0] = w * gamma;
    c.q[1] = gamma;
  };
  auto first = fill;  // a copy: the path's own callable starts from scratch
  first(0, m);
  path.initial = m;
  path.at = fill;
  return path;
}

// Lookahead (Zhang et al. 2019): `sync` inner steps on the fast weights, then
// slow' = slow + a (fast - slow) and fast' = slow'; the loss at the slow weights.
//   inner sgd:       state (fast, slow)
//   inner torch-sgd: state (fast, buf, slow), buf_0 = 0 and carried over a
//                    synchronisation (the reference implementation's default)
// A synchronising step composes the inner update with the averaging: its fast
// and slow rows are (1 - a) slow + a (inner update of fast).
template <class Real>
MethodPath<Real> lookahead(const MethodSpec& s) {
  const Real lr = hp<Real>(s, "lr"), a = hp<Real>(s, "slow_step");
  const bool momentum = s.value("inner") != 0;
  const Real mu = momentum ? hp<Real>(s, "momentum") : Real(0);
  const auto sync = static_cast<std::uint64_t>(s.value("sync"));
  Method<Real> inner, synced;
  const int k = momentum ? 3 : 2, slow = k - 1;
  inner.k = synced.k = k;
  inner.r = synced.r = {Real(1), Real(0), Real(0), Real(0)};
  inner.o[slow] = synced.o[slow] = 1;
  inner.s0 = synced.s0 = {Real(1), Real(momentum ? 0 : 1), Real(1), Real(0)};
  // Inner step: fast' = fast - lr mu buf - lr g,  buf' = mu buf + g,  slow' = slow.
  inner.P[0][0] = 1;
  inner.q[0] = lr;
  if (momentum) {
    inner.P[0][1] = -lr * mu;
    inner.P[1][1] = mu;
    inner.q[1] = -1;
  }
  inner.P[slow][slow] = 1;
  synced = inner;
  for (const int row : {0, slow}) {
    for (int j = 0; j < k; ++j) synced.P[row][j] = a * inner.P[0][j];
    synced.P[row][slow] += 1 - a;
    synced.q[row] = a * inner.q[0];
  }
  MethodPath<Real> path(sync == 1 ? synced : inner);
  if (sync == 1) return path;
  path.at = [inner, synced, sync](std::uint64_t t, Method<Real>& m) { m = (t + 1) % sync == 0 ? synced : inner; };
  path.constant_from = std::nullopt;
  return path;
}

#define CESR_FACTORY(fn) Factory{&fn<double>, &fn<long double>, &fn<quad>, &fn<mp50>, &fn<exact>}

// --- validation of relations between hyperparameters ---------------------------

void validate_accsgd(const MethodSpec& s) {
  // alpha = 1 - c^2 xi / kappa must lie in [0, 1) so that the buffer update is
  // a convex combination, as in the authors' optimizer.
  const double c = s.value("small_const"), xi = s.value("xi"), kappa = s.value("kappa");
  if (c * c * xi > kappa)
    throw FieldError("xi", fmt::format("xi {} is too large for kappa {} (need small_const^2 * xi <= kappa)", xi, kappa));
}

void validate_torch_sgd(const MethodSpec& s) {
  // Under a momentum schedule, the momentum of its first step stands for it.
  const double mu = s.momentum_schedule.constant() ? s.value("momentum") : s.momentum_schedule.at(0);
  if (s.value("nesterov") != 0 && (!(mu > 0) || s.value("dampening") != 0))
    throw FieldError("nesterov", "nesterov requires momentum > 0 and dampening = 0 (as torch.optim.SGD)");
}

void validate_lookahead(const MethodSpec& s) {
  if (s.value("inner") == 0 && s.values.count("momentum"))
    throw FieldError("momentum", "momentum applies to lookahead only with inner torch-sgd");
  if (s.value("inner") == 0 && !s.momentum_schedule.constant())
    throw FieldError("momentum_schedule", "momentum_schedule applies to lookahead only with inner torch-sgd");
}

bool hb_mean_diverges(const MethodSpec& m, double L) { return m.value("lr") * L >= 2 * (1 + m.value("momentum")); }
bool nag_mean_diverges(const MethodSpec& m, double L) {
  const double b = m.value("momentum");
  return m.value("lr") * L * (1 + 2 * b) >= 2 + 2 * b;
}
bool sgd_mean_diverges(const MethodSpec& m, double L) { return m.value("lr") * L >= 2; }

constexpr double inf = std::numeric_limits<double>::infinity();

Hyperparameter step_size(std::string_view description = "Step size eta > 0") {
  Hyperparameter h;
  h.name = "lr";
  h.description = description;
  h.lo = 0;
  h.lo_open = true;
  h.hi = inf;
  h.hi_open = true;
  h.search = Search::StepSize;
  return h;
}
Hyperparameter unit_interval(std::string_view name, std::string_view description, Search search,
                             std::optional<double> def, bool hi_open = true) {
  Hyperparameter h;
  h.name = name;
  h.description = description;
  h.lo = 0;
  h.hi = 1;
  h.hi_open = hi_open;
  h.search = search;
  h.default_value = def;
  return h;
}

std::vector<MethodInfo> make_registry() {
  std::vector<MethodInfo> rows;
  const Hyperparameter lr = step_size();
  const Hyperparameter momentum = unit_interval("momentum", "Momentum beta in [0, 1)", Search::Damping, {});
  {
    MethodInfo m;
    m.name = "sgd";
    m.paper_name = "SGD";
    m.description = "Stochastic gradient descent: e' = e - lr g(e)";
    Hyperparameter sgd_lr = lr;
    sgd_lr.search_max = 2;  // beyond 2 / lambda_max SGD diverges in the top direction
    m.hyperparameters = {sgd_lr};
    m.states = 1;
    m.factory = CESR_FACTORY(sgd);
    m.mean_diverges = &sgd_mean_diverges;
    rows.push_back(m);
  }
  {
    MethodInfo m;
    m.name = "hb";
    m.paper_name = "HB";
    m.description = "Heavy ball (Polyak 1964): e' = e - lr g(e) + momentum (e - e_prev)";
    m.hyperparameters = {lr, momentum};
    m.states = 2;
    m.factory = CESR_FACTORY(heavy_ball);
    m.effective_step = true;
    m.mean_diverges = &hb_mean_diverges;
    rows.push_back(m);
  }
  {
    MethodInfo m;
    m.name = "nag";
    m.paper_name = "NAG";
    m.description = "Nesterov (1983): y = e + momentum (e - e_prev), e' = y - lr g(y); loss at e";
    m.hyperparameters = {lr, momentum};
    m.states = 2;
    m.factory = CESR_FACTORY(nesterov);
    m.effective_step = true;
    m.mean_diverges = &nag_mean_diverges;
    rows.push_back(m);
  }
  {
    MethodInfo m;
    m.name = "asgd";
    m.paper_name = "AccSGD";
    m.description = "AccSGD (Kidambi, Netrapalli, Jain, Kakade 2018), as the authors' PyTorch optimizer";
    Hyperparameter kappa;
    kappa.name = "kappa";
    kappa.description = "Long-step parameter kappa_a >= 1";
    kappa.lo = 1;
    kappa.hi = inf;
    kappa.hi_open = true;
    kappa.search = Search::Condition;
    Hyperparameter xi;
    xi.name = "xi";
    xi.description = "Statistical advantage parameter xi > 0 (the authors advise 1 <= xi <= sqrt(kappa_a))";
    xi.lo = 0;
    xi.lo_open = true;
    xi.hi = inf;
    xi.hi_open = true;
    xi.search = Search::RootOfKappa;
    Hyperparameter c;
    c.name = "small_const";
    c.description = "Constant c > 0 (the authors' 0.7)";
    c.default_value = 0.7;
    c.lo = 0;
    c.lo_open = true;
    c.hi = inf;
    c.hi_open = true;
    m.hyperparameters = {lr, kappa, xi, c};
    m.states = 2;
    m.factory = CESR_FACTORY(accsgd);
    m.validate = &validate_accsgd;
    rows.push_back(m);
  }
  {
    MethodInfo m;
    m.name = "torch-sgd";
    m.paper_name = "torch SGD";
    m.description = "torch.optim.SGD without weight decay (buffer starts at the first gradient, undamped)";
    Hyperparameter mu = unit_interval("momentum", "Momentum mu in [0, 1) (PyTorch's default 0)", Search::Damping, 0.0);
    Hyperparameter damp = unit_interval("dampening", "Dampening tau in [0, 1] (PyTorch's default 0)", Search::None, 0.0, false);
    Hyperparameter nest;
    nest.name = "nesterov";
    nest.description = "Nesterov momentum as PyTorch's nesterov=True (the parameter is the look-ahead point)";
    nest.flag = true;
    nest.default_value = 0;
    nest.lo = 0;
    nest.hi = 1;
    m.hyperparameters = {lr, mu, damp, nest};
    m.states = 2;
    m.time = Time::ConstantAfterOne;
    m.factory = CESR_FACTORY(torch_sgd);
    m.validate = &validate_torch_sgd;
    m.effective_step = true;
    rows.push_back(m);
  }
  {
    MethodInfo m;
    m.name = "qhm";
    m.paper_name = "QHM";
    m.description = "Quasi-hyperbolic momentum (Ma & Yarats 2019): lr [(1 - nu) g + nu buf], buf an EMA of g";
    Hyperparameter nu = unit_interval("nu", "Immediate discount nu in [0, 1] (the authors advise 0.7)", Search::Unit, {},
                                      false);
    m.hyperparameters = {lr, momentum, nu};
    m.states = 2;
    m.factory = CESR_FACTORY(qhm);
    // Although its buffer is an EMA of g, the tuned points (where QHM becomes
    // AccSGD: lr ~ 3, beta ~ 0.99) lie along lr/(1 - beta) = const: searching
    // log lr instead halved the tuned gap on powerlaw:d=50,alpha=2 (test_tune).
    m.effective_step = true;
    rows.push_back(m);
  }
  {
    MethodInfo m;
    m.name = "schedule-free";
    m.paper_name = "Schedule-Free";
    m.description = "Schedule-Free SGD (Defazio et al. 2024), the authors' default weighting; loss at x";
    Hyperparameter beta =
        unit_interval("momentum", "Interpolation beta in [0, 1] (the authors' 0.9)", Search::Unit, {}, false);
    m.hyperparameters = {lr, beta};
    m.states = 2;
    m.time = Time::Varying;
    m.factory = CESR_FACTORY(schedule_free);
    m.own_lr_schedule = true;
    rows.push_back(m);
  }
  {
    MethodInfo m;
    m.name = "lookahead";
    m.paper_name = "Lookahead";
    m.description = "Lookahead (Zhang, Lucas, Hinton, Ba 2019) around sgd or torch-sgd; loss at the slow weights";
    Hyperparameter sync;
    sync.name = "sync";
    sync.description = "Inner steps k between synchronisations (the authors' 5)";
    sync.integer = true;
    sync.lo = 1;
    sync.hi = 1e9;
    sync.default_value = 5;
    Hyperparameter a = unit_interval("slow_step", "Slow step size alpha in (0, 1] (the authors' 0.5)", Search::Unit, 0.5,
                                     false);
    a.lo_open = true;
    Hyperparameter inner;
    inner.name = "inner";
    inner.description = "Inner optimizer: sgd or torch-sgd (with --momentum; its buffer carries over)";
    inner.choices = {"sgd", "torch-sgd"};
    inner.default_value = 0;
    inner.lo = 0;
    inner.hi = 1;
    Hyperparameter mu = unit_interval("momentum", "Inner momentum in [0, 1) (inner torch-sgd only)", Search::None, {});
    mu.optional = true;
    m.hyperparameters = {lr, sync, a, inner, mu};
    m.states = 2;
    m.states_max = 3;
    m.time = Time::Varying;
    m.factory = CESR_FACTORY(lookahead);
    m.validate = &validate_lookahead;
    rows.push_back(m);
  }
  {
    MethodInfo m;
    m.name = "custom";
    m.paper_name = "custom";
    m.description = "Any linear method: (P, q, r, o, s0) from a JSON file, k <= 4 states";
    m.states = 1;  // 1..4, from the file
    m.states_max = max_states;
    m.factory = CESR_FACTORY(custom);
    m.from_file = true;
    rows.push_back(m);
  }
  return rows;
}

// --- averaging ------------------------------------------------------------

/// Adds the average state a to a base path of k <= 3 states: with the weight
/// g_t of step t,  a_{t+1} = g_t a_t + (1 - g_t) e_{t+1},  e_{t+1} = o^T (P s - q g),
/// i.e. the row o^T P scaled by 1 - g_t plus g_t on the diagonal, and
/// (1 - g_t) o^T q injected; the output is a.
template <class Real>
void add_average_row(const Method<Real>& base, const Real& g, Method<Real>& m) {
  const int k = base.k;
  if (k >= max_states) throw std::logic_error("cesr: an average needs a free state (MethodSpec::validate)");
  m = base;
  m.k = k + 1;
  Real oq = 0;
  for (int j = 0; j < k; ++j) {
    Real op = 0;
    for (int a = 0; a < k; ++a) op += base.o[a] * base.P[a][j];
    m.P[k][j] = (1 - g) * op;
    oq += base.o[j] * base.q[j];
  }
  m.P[k][k] = g;
  m.q[k] = (1 - g) * oq;
  m.r[k] = 0;
  Real os0 = 0;
  for (int a = 0; a < k; ++a) os0 += base.o[a] * base.s0[a];
  m.s0[k] = os0;
  m.o = {};
  m.o[k] = 1;
}

template <class Real>
Real average_weight(const Average& avg, std::uint64_t t) {
  switch (avg.kind) {
    case Average::Kind::Ema: return static_cast<Real>(avg.decay);
    case Average::Kind::Polyak: return Real(t + 1) / Real(t + 2);
    case Average::Kind::Tail:
      // a_{t+1} = e_{t+1} up to S, then the mean of e_S..e_{t+1} (t + 2 - S terms).
      if (t + 1 <= avg.start) return Real(0);
      return Real(t + 1 - avg.start) / Real(t + 2 - avg.start);
    case Average::Kind::None: break;
  }
  return Real(0);
}

template <class Real>
MethodPath<Real> averaged(const MethodPath<Real>& base, const Average& avg) {
  if (!avg.given()) return base;
  MethodPath<Real> out;
  add_average_row(base.initial, average_weight<Real>(avg, 0), out.initial);
  if (base.constant() && avg.kind == Average::Kind::Ema) return out;
  out.at = [base, avg](std::uint64_t t, Method<Real>& m) {
    add_average_row(base.coefficients(t), average_weight<Real>(avg, t), m);
  };
  out.constant_from = avg.kind == Average::Kind::Ema ? base.constant_from : std::nullopt;
  return out;
}

template <class Real, class Wide>
MethodPath<Real> cast_path(const MethodPath<Wide>& wide) {
  MethodPath<Real> out(wide.initial.template cast<Real>());
  if (wide.constant()) return out;
  // Only a path that settles after its first step is formed wide (make_path).
  const Method<Real> first = out.initial, tail = wide.coefficients(1).template cast<Real>();
  out.at = [first, tail](std::uint64_t t, Method<Real>& m) { m = t == 0 ? first : tail; };
  out.constant_from = 1;
  return out;
}

}  // namespace

template <class Real>
MethodPath<Real> Factory::make(const MethodSpec& spec) const {
  if constexpr (std::is_same_v<Real, double>) return as_double(spec);
  else if constexpr (std::is_same_v<Real, long double>) return as_long(spec);
  else if constexpr (std::is_same_v<Real, quad>) return as_quad(spec);
  else if constexpr (std::is_same_v<Real, exact>) return as_exact(spec);
  else return as_mp50(spec);
}

std::string_view to_string(Search s) {
  switch (s) {
    case Search::None: return "none";
    case Search::StepSize: return "step-size";
    case Search::Damping: return "damping";
    case Search::Unit: return "unit";
    case Search::Condition: return "condition";
    case Search::RootOfKappa: return "root-of-kappa";
  }
  return "?";
}

namespace {
std::string number_text(double x) {
  if (x == inf) return "inf";
  if (x == -inf) return "-inf";
  return fmt::format("{}", x);
}
}  // namespace

std::string Hyperparameter::range_text() const {
  if (!choices.empty()) {
    std::string out = "one of ";
    for (std::size_t i = 0; i < choices.size(); ++i) out += (i ? ", " : "") + std::string(choices[i]);
    return out;
  }
  if (flag) return "0 or 1";
  std::string kind = integer ? "a whole number " : "";
  if (hi == inf) return kind + (lo_open ? "> " : ">= ") + number_text(lo);
  return kind + "in " + (lo_open ? "(" : "[") + number_text(lo) + ", " + number_text(hi) + (hi_open ? ")" : "]");
}

void Hyperparameter::check(double x) const {
  const bool in_range = std::isfinite(x) && (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi) &&
                        (!(integer || flag || !choices.empty()) || x == std::floor(x));
  if (!in_range) throw FieldError(std::string(name), fmt::format("{} must be {}, got {}", name, range_text(), x));
}

const Hyperparameter* MethodInfo::find(std::string_view field) const {
  for (const auto& h : hyperparameters)
    if (h.name == field) return &h;
  return nullptr;
}

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> rows = make_registry();
  return rows;
}

std::size_t method_index(std::string_view name) {
  return static_cast<std::size_t>(&method_info(name) - methods().data());
}

std::string method_names() {
  std::string out;
  for (const auto& m : methods()) out += (out.empty() ? "" : ", ") + std::string(m.name);
  return out;
}

const MethodInfo& method_info(std::string_view name) {
  for (const auto& m : methods())
    if (m.name == name) return m;
  throw FieldError("method", fmt::format("method: unknown method '{}' (expected one of {})", name, method_names()));
}

Average parse_average(std::string_view text) {
  const auto fail = [&](std::string_view why) {
    return FieldError("average", fmt::format("average: '{}': {} (expected ema:decay=G, polyak or tail:start=S)", text, why));
  };
  Average a;
  if (text.empty() || text == "none") return a;
  if (text == "polyak") {
    a.kind = Average::Kind::Polyak;
    return a;
  }
  const auto colon = text.find(':');
  const std::string_view kind = text.substr(0, colon);
  if (colon == std::string_view::npos) throw fail("unknown average");
  const std::string_view kv = text.substr(colon + 1);
  const auto eq = kv.find('=');
  if (eq == std::string_view::npos) throw fail("expected KEY=VALUE after ':'");
  const std::string key(kv.substr(0, eq)), value(kv.substr(eq + 1));
  double x = 0;
  std::size_t used = 0;
  try {
    x = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || value.empty() || !std::isfinite(x)) throw fail(fmt::format("'{}' is not a number", value));
  if (kind == "ema" && key == "decay") {
    if (!(x >= 0 && x < 1)) throw fail("decay must be in [0, 1)");
    a.kind = Average::Kind::Ema;
    a.decay = x;
    return a;
  }
  if (kind == "tail" && key == "start") {
    if (!(x >= 0 && x == std::floor(x) && x < 1.8e19)) throw fail("start must be a whole number >= 0");
    a.kind = Average::Kind::Tail;
    a.start = static_cast<std::uint64_t>(x);
    return a;
  }
  throw fail(kind == "ema" || kind == "tail" ? "unknown key" : "unknown average");
}

std::string to_string(const Average& a) {
  switch (a.kind) {
    case Average::Kind::None: return "";
    case Average::Kind::Ema: return fmt::format("ema:decay={}", a.decay);
    case Average::Kind::Polyak: return "polyak";
    case Average::Kind::Tail: return fmt::format("tail:start={}", a.start);
  }
  return "";
}

std::optional<double> MethodSpec::get(std::string_view field) const {
  if (const auto it = values.find(field); it != values.end()) return it->second;
  if (const Hyperparameter* h = info().find(field)) return h->default_value;
  return std::nullopt;
}

double MethodSpec::value(std::string_view field) const {
  const auto v = get(field);
  if (!v) throw FieldError(std::string(field), fmt::format("{} is required for method {}", field, name));
  return *v;
}

int MethodSpec::states() const { return make_path<double>(*this).initial.k; }

Time MethodSpec::time() const {
  const Time row = info().time;
  if (average.constant() && lr_schedule.constant() && momentum_schedule.constant()) return row;
  return Time::Varying;
}

void MethodSpec::validate() const {
  const MethodInfo& row = info();
  for (const auto& [field, v] : values) {
    const Hyperparameter* h = row.find(field);
    if (!h)
      throw FieldError(field, fmt::format("{} {} does not apply to method {}", field, v, name));
    h->check(v);
  }
  const bool momentum_scheduled = !momentum_schedule.constant();
  if (momentum_scheduled) {
    if (!row.find("momentum"))
      throw FieldError("momentum_schedule", fmt::format("momentum_schedule: method {} has no momentum", name));
    if (values.count("momentum"))
      throw FieldError("momentum_schedule", "momentum_schedule replaces momentum: give one of them");
  }
  if (!lr_schedule.constant()) {
    if (!row.find("lr")) throw FieldError("lr_schedule", fmt::format("lr_schedule: method {} has no lr", name));
    if (lr_schedule.needs_horizon())
      throw FieldError("lr_schedule", fmt::format("lr_schedule '{}' needs the run's horizon (steps=)", lr_schedule.text()));
  }
  for (const auto& h : row.hyperparameters)
    if (!h.optional && !get(h.name) && !(momentum_scheduled && h.name == "momentum"))
      throw FieldError(std::string(h.name), fmt::format("{} is required for method {}", h.name, name));
  if (row.validate) row.validate(*this);
  if (row.from_file) {
    if (custom.k < 1 || custom.k > max_states)
      throw FieldError("method_file", fmt::format("method_file: k must be 1..{}, got {}", max_states, custom.k));
  }
  if (average.given()) {
    // The base method's states, before the average adds one.
    MethodSpec base = *this;
    base.average = Average();
    const int k = row.from_file ? custom.k : make_path<double>(base).initial.k;
    if (k + 1 > max_states)
      throw FieldError("average", fmt::format("average: method {} already has {} states; an average adds one, and "
                                              "at most {} are supported",
                                              name, k, max_states));
  }
}

MethodSpec method_spec(std::string_view name, std::initializer_list<std::pair<std::string_view, double>> values) {
  MethodSpec s;
  s.name = std::string(name);
  for (const auto& [k, v] : values) s.set(k, v);
  return s;
}

namespace {

/// Coefficients under lr and momentum schedules: at step t the row's factory
/// (in the working precision) with lr m_t lr and the scheduled momentum, its
/// coefficients of step t; rebuilt only when those values change.
template <class Real>
MethodPath<Real> scheduled(const MethodSpec& spec) {
  const MethodInfo& row = spec.info();
  struct Cache {
    bool valid = false;
    double lr = 0, momentum = 0;
    MethodPath<Real> path;
  };
  const bool lr_here = !spec.lr_schedule.constant() && !row.own_lr_schedule;
  const bool momentum_here = !spec.momentum_schedule.constant();
  // The cache lives in the callable (mutable): each copy of the path has its own.
  const auto coefficients = [spec, lr_here, momentum_here, cache = Cache{}, &row](std::uint64_t t,
                                                                                 Method<Real>& m) mutable {
    const double lr = lr_here ? spec.value("lr") * spec.lr_schedule.at(t) : 0;
    const double momentum = momentum_here ? spec.momentum_schedule.at(t) : 0;
    if (!cache.valid || lr != cache.lr || momentum != cache.momentum) {
      MethodSpec at_t = spec;
      if (lr_here) at_t.set("lr", lr), at_t.lr_schedule = Schedule();
      if (momentum_here) at_t.set("momentum", momentum), at_t.momentum_schedule = Schedule();
      cache = {true, lr, momentum, averaged(row.factory.make<Real>(at_t), spec.average)};
    }
    m = cache.path.coefficients(t);
  };
  MethodPath<Real> path;
  auto first = coefficients;
  first(0, path.initial);
  path.at = coefficients;
  path.constant_from = std::nullopt;
  return path;
}

}  // namespace

template <class Real>
MethodPath<Real> make_path(const MethodSpec& spec) {
  const MethodInfo& row = spec.info();
  const Time time = spec.time();
  if ((!spec.lr_schedule.constant() && !row.own_lr_schedule) || !spec.momentum_schedule.constant())
    return scheduled<Real>(spec);
  if (time != Time::Varying) {
    // Constant (or constant after one step): formed in 50 digits, rounded once.
    return cast_path<Real>(averaged(row.factory.make<mp50>(spec), spec.average));
  }
  return averaged(row.factory.make<Real>(spec), spec.average);
}

template <class Real>
Method<Real> make_method(const MethodSpec& spec) {
  const MethodPath<Real> path = make_path<Real>(spec);
  if (!path.constant_from)
    throw FieldError("method", fmt::format("method: the coefficients of {} change with the step; the rate needs "
                                           "constant coefficients (use steps or loss instead)",
                                           describe(spec)));
  return path.coefficients(*path.constant_from);
}

Method<exact> make_method_exact(const MethodSpec& spec) {
  const MethodInfo& row = spec.info();
  // Scheduled coefficients change with the step: make_method names the problem.
  if ((!spec.lr_schedule.constant() && !row.own_lr_schedule) || !spec.momentum_schedule.constant())
    (void)make_method<double>(spec);
  const MethodPath<exact> path = averaged(row.factory.make<exact>(spec), spec.average);
  if (!path.constant_from) (void)make_method<double>(spec);
  if (!path.constant_from) throw std::logic_error("make_method_exact: the coefficients change with the step");
  return path.coefficients(*path.constant_from);
}

Method<double> read_method_file(const std::string& path) {
  std::string text;
  try {
    text = read_text_file(path, "method file", std::size_t{1} << 20);
  } catch (const std::invalid_argument& e) {
    throw FieldError("method_file", fmt::format("method_file: {}", e.what()));
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FieldError("method_file", fmt::format("method_file: '{}' is not valid JSON ({})", path, e.what()));
  }
  const auto fail = [&](const std::string& why) {
    return FieldError("method_file", fmt::format("method_file: '{}': {}", path, why));
  };
  if (!j.is_object()) throw fail("expected an object with keys P, q, r, o (and optionally s0)");
  for (const char* key : {"P", "q", "r", "o"})
    if (!j.contains(key)) throw fail(fmt::format("missing key \"{}\"", key));
  for (const auto& [key, value] : j.items())
    if (key != "P" && key != "q" && key != "r" && key != "o" && key != "s0")
      throw fail(fmt::format("unknown key \"{}\"", key));
  const auto number = [&](const nlohmann::json& x, const std::string& where) {
    if (!x.is_number()) throw fail(fmt::format("{} must be a number", where));
    const double v = x.get<double>();
    if (!std::isfinite(v)) throw fail(fmt::format("{} is not finite", where));
    return v;
  };
  const auto& P = j["P"];
  if (!P.is_array() || P.empty() || P.size() > static_cast<std::size_t>(max_states))
    throw fail(fmt::format("P must be a k x k array of arrays with k = 1..{}", max_states));
  Method<double> m;
  m.k = static_cast<int>(P.size());
  for (int a = 0; a < m.k; ++a) {
    if (!P[a].is_array() || static_cast<int>(P[a].size()) != m.k)
      throw fail(fmt::format("P must be {}x{}", m.k, m.k));
    for (int b = 0; b < m.k; ++b) m.P[a][b] = number(P[a][b], fmt::format("P[{}][{}]", a, b));
  }
  for (const char* key : {"q", "r", "o", "s0"}) {
    if (!j.contains(key)) continue;
    const auto& v = j[key];
    if (!v.is_array() || static_cast<int>(v.size()) != m.k)
      throw fail(fmt::format("\"{}\" must have {} entries (k from P)", key, m.k));
    auto& dst = key[0] == 'q' ? m.q : key[0] == 'r' ? m.r : key[0] == 'o' ? m.o : m.s0;
    for (int a = 0; a < m.k; ++a) dst[a] = number(v[a], fmt::format("{}[{}]", key, a));
  }
  for (int a = m.k; a < max_states; ++a) m.s0[a] = 0;
  return m;
}

std::string describe(const MethodSpec& s) {
  const MethodInfo& row = s.info();
  std::string out(row.name);
  if (row.hyperparameters.empty()) {
    out += fmt::format("(k={})", s.custom.k);
  } else {
    std::string args;
    for (const auto& h : row.hyperparameters) {
      const auto v = s.get(h.name);
      if (!v) continue;
      std::string text;
      if (!h.choices.empty() && *v >= 0 && *v < static_cast<double>(h.choices.size()))
        text = std::string(h.choices[static_cast<std::size_t>(*v)]);
      else if (h.flag) text = *v != 0 ? "true" : "false";
      else text = fmt::format("{}", *v);
      args += fmt::format("{}{}={}", args.empty() ? "" : ", ", h.name, text);
    }
    out += "(" + args + ")";
  }
  if (s.average.given()) out += "+" + to_string(s.average);
  if (!s.lr_schedule.constant()) out += "+lr_schedule=" + s.lr_schedule.text();
  if (!s.momentum_schedule.constant()) out += "+momentum_schedule=" + s.momentum_schedule.text();
  return out;
}

#define CESR_INSTANTIATE(Real)                                                   \
  template MethodPath<Real> Factory::make<Real>(const MethodSpec&) const;       \
  template MethodPath<Real> make_path<Real>(const MethodSpec&);                  \
  template Method<Real> make_method<Real>(const MethodSpec&);
CESR_FOR_EACH_REAL(CESR_INSTANTIATE)
#undef CESR_INSTANTIATE

}  // namespace cesr
