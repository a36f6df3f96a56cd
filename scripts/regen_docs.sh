#!/usr/bin/env bash
# Regenerates every cesr-made table, output and figure in docs/ from the cesr
# binary, or (--check) regenerates them into a temporary copy and fails if the
# result differs from docs/, so the docs never drift from the code.
#
# A page asks for generated content with a marked region:
#
#   <!-- cesr: ARGS -->          the standard output of `cesr ARGS`, as is
#   ...                          (e.g. a --format markdown table)
#   <!-- /cesr -->
#
#   <!-- cesr-code: ARGS -->     the same inside a code block, after the line
#   ...                          "$ cesr ARGS"
#   <!-- /cesr -->
#
#   <!-- cesr-code[N]: ARGS -->  a command expected to exit with status N (0, or
#   ...                          1 when cesr check disagrees); its standard
#   <!-- /cesr -->               output, then its standard error in the block
#
# ARGS are split at blanks (no quoting); they run in the folder of the page, so
# `--plot figures/NAME.svg` (or `--output figures/NAME.csv`) writes a file next
# to the docs. In check mode everything in docs/figures/ is regenerated too, and
# a file there that no command makes is reported.
# Every command must be deterministic (fixed seeds; --threads does not change
# cesr's output). --check compares with scripts/compare_docs.py: the text must
# be identical up to the width of blank runs, and two numbers a, b agree when
# |a - b| <= max(1e-9 max(|a|, |b|), 1e-12, one unit in the last printed digit)
# (integers, which are counts, exactly; --rtol sets the 1e-9), so a portable
# (-DCESR_NATIVE=OFF) and a native build, whose doubles differ in the 16th-17th
# digit, both pass. Regeneration writes what the binary prints.
#
# Usage: scripts/regen_docs.sh [--check] [--rtol R] [--cesr PATH] [--docs DIR]
#   --rtol R      the relative tolerance of --check (default 1e-9)
#   --cesr PATH   the binary (default: $CESR, else build/cesr)
#   --docs DIR    the docs folder (default: docs/ of this repository)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cesr=${CESR:-$repo/build/cesr}
docs=$repo/docs
check=0
rtol=1e-9
while (($#)); do
  case $1 in
    --check) check=1 ;;
    --rtol) rtol=$2; shift ;;
    --cesr) cesr=$2; shift ;;
    --docs) docs=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "regen_docs: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ -x $cesr ]] || { echo "regen_docs: no cesr binary at '$cesr' (build it, or give --cesr PATH)" >&2; exit 2; }
[[ -d $docs ]] || { echo "regen_docs: no docs folder at '$docs'" >&2; exit 2; }
cesr=$(cd "$(dirname "$cesr")" && pwd)/$(basename "$cesr")
docs=$(cd "$docs" && pwd)

# Regenerates the marked regions of one page in place.
regen_page() {
  local page=$1 dir out line args status kind expected show_err
  dir=$(dirname "$page")
  out=$(mktemp)
  local in_region=0 in_fence=0 lineno=0
  while IFS= read -r line || [[ -n $line ]]; do
    lineno=$((lineno + 1))
    if ((in_region)); then
      if [[ $line == '<!-- /cesr -->' ]]; then
        printf '%s\n' "$line" >>"$out"
        in_region=0
      fi
      continue
    fi
    printf '%s\n' "$line" >>"$out"
    # A marker shown inside a code block is an example, not a region.
    if [[ $line == '```'* ]]; then
      in_fence=$((1 - in_fence))
      continue
    fi
    if ((!in_fence)) && [[ $line =~ ^'<!-- cesr'(-code)?(\[([0-9]+)\])?': '(.*)' -->'$ ]]; then
      kind=${BASH_REMATCH[1]}
      expected=${BASH_REMATCH[3]:-0}
      show_err=${BASH_REMATCH[2]:+1}
      args=${BASH_REMATCH[4]}
      if [[ -n ${BASH_REMATCH[2]} && $kind != -code ]]; then
        echo "regen_docs: ${page#"$docs"/}:$lineno: an expected exit status needs cesr-code[N]" >&2
        rm -f "$out"
        return 1
      fi
      local -a argv
      read -ra argv <<<"$args"
      local result
      result=$(mktemp)
      status=0
      (cd "$dir" && "$cesr" "${argv[@]}") </dev/null >"$result" 2>"$result.err" || status=$?
      if ((status != expected)); then
        echo "regen_docs: ${page#"$docs"/}:$lineno: 'cesr $args' exited $status, expected $expected:" >&2
        cat "$result.err" >&2
        rm -f "$result" "$result.err" "$out"
        return 1
      fi
      if [[ $kind == -code ]]; then
        { printf '```\n$ cesr %s\n' "$args"; cat "$result"; [[ -z $show_err ]] || cat "$result.err"; printf '```\n'; } >>"$out"
      else
        cat "$result" >>"$out"
      fi
      rm -f "$result" "$result.err"
      in_region=1
    fi
  done <"$page"
  if ((in_region)); then
    echo "regen_docs: ${page#"$docs"/}: a '<!-- cesr' region has no '<!-- /cesr -->'" >&2
    rm -f "$out"
    return 1
  fi
  cat "$out" >"$page"
  rm -f "$out"
}

regen_all() {
  local root=$1 page
  mkdir -p "$root/figures"
  while IFS= read -r -d '' page; do
    regen_page "$page"
  done < <(find "$root" -name '*.md' -print0 | sort -z)
  rmdir "$root/figures" 2>/dev/null || true  # only if no page made a figure
}

if ((check)); then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp -R "$docs" "$tmp/docs"
  # Everything in figures/ must be remade by the pages' commands, not copied.
  rm -rf "$tmp/docs/figures"
  mkdir "$tmp/docs/figures"
  regen_all "$tmp/docs"
  # Numbers are compared to a relative tolerance of $rtol, not bit for bit: the
  # portable and the native build differ in the last bits of a double.
  if ! /usr/bin/python3 "$repo/scripts/compare_docs.py" --rtol "$rtol" "$docs" "$tmp/docs" 2>"$tmp/diff"; then
    echo "regen_docs: docs/ is out of date with cesr (numbers compared to a relative $rtol, see --help);" \
      "run scripts/regen_docs.sh and commit the result:" >&2
    cat "$tmp/diff" >&2
    exit 1
  fi
  echo "regen_docs: docs/ is up to date (numbers to a relative $rtol)"
else
  regen_all "$docs"
  echo "regen_docs: regenerated $(find "$docs" -name '*.md' | wc -l) pages and $(find "$docs/figures" -type f | wc -l) figures in $docs"
fi
