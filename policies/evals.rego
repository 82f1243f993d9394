# relgate.evals: evaluation results (spec.evaluations, input.evidence.evaluations).
#
# Rules: EVAL-THRESHOLD, EVAL-REGRESSION, EVAL-MISSING, EVAL-SAMPLES, EVAL-PROMPT-MISMATCH,
# EVAL-MODEL-MISMATCH, EVIDENCE-DIGEST, EVIDENCE-UNREADABLE.
#
# Thresholds come from the manifest (spec.evaluations[i].thresholds), values from the gathered
# evidence entry with the same index (docs/policy-contract.md, "Evaluation evidence"). Semantics:
# - EVIDENCE-UNREADABLE: an evidence side (candidate, or a declared baseline) has a non-empty
#   `error` (missing, outside the gate root, too large, not parsable as its format); the message
#   carries the error. Also when relgate gathered no evidence entry for a manifest entry. A side
#   with an error is not checked further (no EVAL-* noise for it).
# - EVIDENCE-DIGEST: a side's file digest differs from the manifest's `<side>.digest` (compared
#   case-insensitively), or the manifest pins no digest for a file that was read.
# - EVAL-THRESHOLD: the candidate value is below `min` or above `max` (a value equal to the bound
#   passes).
# - EVAL-MISSING: a thresholded metric is absent from the candidate; or a metric with a
#   regression bound (`max_regression`, `max_relative_regression`) is absent from the baseline,
#   or no baseline file is declared at all.
# - EVAL-REGRESSION: direction = threshold `higher_is_better`, else inferred from the threshold
#   (`min` without `max`: higher is better; `max` without `min`: lower is better), else the
#   results' records when those that state one agree; when it cannot be told and a regression
#   bound is set, a finding asks for `higher_is_better`. A record whose `higher_is_better`
#   contradicts the direction inferred from `min` or `max` is a finding too (path
#   ...thresholds.<metric>.higher_is_better): a results file never silently flips the direction.
#   With a regression bound, baseline results with the candidate's own sha256 (the same file,
#   or a copy) are a finding too (path ...baseline.path): the bound would compare the candidate
#   with itself. `worse` = baseline - candidate (higher is better) or candidate -
#   baseline (lower is better). It fires when worse > max_regression, or when
#   worse / |baseline| > max_relative_regression (with a baseline of 0, any worse > 0 fires:
#   the relative change is unbounded). With `significance_z` set and both stderrs known, the
#   worsening must also exceed z * sqrt(se_c^2 + se_b^2); with a stderr unknown,
#   significance_z is ignored (and the message says so). significance_z is capped at config
#   evals.max_significance_z (default 3; an org bound: a huge z would excuse any regression as
#   noise, and the message says when the cap applied). Differences within 1e-9 of a bound
#   (float rounding of computed differences) count as at the bound, which passes.
# - EVAL-SAMPLES: with `min_samples` (raised to config evals.min_samples_floor, default 0, which
#   also applies to an evaluation that states none), every thresholded metric present in the candidate must have
#   at least that many samples (the record's `samples`, else the file's); an unknown count also
#   fires. Without thresholds the file's `samples` is checked.
# - EVAL-PROMPT-MISMATCH (PromptRelease, format promptfoo, candidate side only): relgate compares
#   the sha256 of the repository prompt file (input.evidence.artifacts[role=prompt].digest) with the
#   candidate's `prompt_digests` (sha256 of each prompt template text promptfoo recorded, and of
#   that text plus a final newline). It denies when the digest is not among them, when the results
#   record no prompt text, and when they hold more than one distinct prompt (their metrics mix
#   the prompts). promptfoo's prompt ids are not used: they hash the prompt's label, not its text.
#   A prompt artifact is recorded whenever spec.prompt.path or spec.prompt.uri names a file in
#   the repository, whatever spec.prompt.registry says (registry: other cannot skip the check);
#   without one (a prompt kept only in a registry) nothing can be compared and nothing fires.
# - EVAL-MODEL-MISMATCH (PromptRelease with spec.prompt.model_binding, candidate side only): the
#   candidate's `models` (the models its results came from: promptfoo's provider ids, Inspect's
#   eval.model) must each be the bound model or its fallback. An id names {provider, model}
#   when it is the model alone, `provider/model`, or `provider:model` with any middle parts
#   (`openai:chat:gpt-4o-2024-08-06`); compared case-insensitively. An alias is another name
#   (`gpt-4o-mini` is not `gpt-4o-mini-2024-07-18`: the alias moves). Results that name no
#   model (`models_complete: false`: a promptfoo result without a provider, an Inspect log
#   without eval.model) fire too: nothing shows they came from the bound model. A file whose
#   format does not name its models (lm-eval, mlflow, metrics) has no `models` and nothing
#   fires.
package relgate.evals

import data.relgate.lib
import data.relgate.lib.cfg
import data.relgate.lib.manifest
import data.relgate.lib.kind

# ---------------------------------------------------------------------------------------------
# Inputs: cfg, manifest and the metadata fields come from relgate.lib (safe defaults).

specs := e if {
	e := object.get(manifest, ["spec", "evaluations"], [])
	is_array(e)
} else := []

gathered := g if {
	g := input.evidence.evaluations
	is_array(g)
} else := []

artifacts := a if {
	a := input.evidence.artifacts
	is_array(a)
} else := []

sides := ["candidate", "baseline"]

# The evidence entry of spec.evaluations[i] (the first one with that index).
evidence(i) := evs[0] if {
	evs := [ev | some ev in gathered; is_object(ev); ev.index == i]
	count(evs) > 0
}

side(i, role) := s if {
	s := evidence(i)[role]
	is_object(s)
}

usable(s) if {
	is_object(s)
	not lib.non_empty_string(s.error)
	is_object(s.metrics)
}

usable_side(i, role) := s if {
	s := side(i, role)
	usable(s)
}

# The metric record `name` of a usable side.
metric(i, role, name) := r if {
	s := usable_side(i, role)
	r := s.metrics[name]
	is_object(r)
	is_number(r.value)
}

thresholds_of(e) := t if {
	t := e.thresholds
	is_object(t)
} else := {}

bound(t, key) := b if {
	b := t[key]
	is_number(b)
}

has_regression_bound(t) if bound(t, "max_regression")

has_regression_bound(t) if bound(t, "max_relative_regression")

declared_digest(e, role) := d if {
	d := object.get(e, [role, "digest"], null)
	lib.non_empty_string(d)
}

baseline_declared(e) if is_object(e.baseline)

# ---------------------------------------------------------------------------------------------
# Text helpers.

label(i) := sprintf("evaluation %s", [id]) if {
	id := specs[i].id
	lib.non_empty_string(id)
} else := sprintf("spec.evaluations[%d]", [i])

file_of(s) := p if {
	p := s.path
	is_string(p)
} else := "(no path)"

eval_path(i) := sprintf("spec.evaluations[%d]", [i])

# A key appended to a field path: `.key`, or `["key"]` when it is not a bare identifier.
key_segment(k) := sprintf(".%s", [k]) if {
	regex.match(`^[A-Za-z_][A-Za-z0-9_-]*$`, k)
} else := sprintf("[%s]", [json.marshal(k)])

threshold_path(i, name) := sprintf("spec.evaluations[%d].thresholds%s", [i, key_segment(name)])

# A number with about four significant digits, trailing zeros dropped (0.912, 0.034, 3211).
fmt(x) := s if {
	is_number(x)
	x == round(x)
	abs(x) < 1e15
	s := format_int(x, 10)
} else := trimmed(sprintf(sprintf("%%.%df", [decimals(abs(x))]), [x])) if {
	is_number(x)
	abs(x) >= 0.00001
} else := sprintf("%v", [x])

decimals(a) := 0 if a >= 1000

decimals(a) := 1 if {
	a >= 100
	a < 1000
}

decimals(a) := 2 if {
	a >= 10
	a < 100
}

decimals(a) := 3 if {
	a >= 1
	a < 10
}

decimals(a) := 4 if {
	a >= 0.1
	a < 1
}

decimals(a) := 5 if {
	a >= 0.01
	a < 0.1
}

decimals(a) := 6 if {
	a >= 0.001
	a < 0.01
}

decimals(a) := 7 if {
	a >= 0.0001
	a < 0.001
}

decimals(a) := 8 if {
	a >= 0.00001
	a < 0.0001
}

trimmed(s) := t if {
	contains(s, ".")
	u := trim_right(trim_right(s, "0"), ".")
	t := zero_sign(u)
} else := zero_sign(s)

zero_sign("-0") := "0"

zero_sign(s) := s if s != "-0"

# x as text, with full precision when the rounded text would equal that of `other`.
shown(x, other) := fmt(x) if {
	fmt(x) != fmt(other)
} else := sprintf("%v", [x]) if {
	x != other
} else := fmt(x)

direction_text(true) := "higher is better"

direction_text(false) := "lower is better"

# ---------------------------------------------------------------------------------------------
# EVIDENCE-UNREADABLE

deny contains f if {
	some i, e in specs
	is_object(e)
	not evidence(i)
	f := {
		"rule": "EVIDENCE-UNREADABLE",
		"path": eval_path(i),
		"msg": sprintf("%s: relgate gathered no evidence for it (input.evidence.evaluations has no entry with index %d), so its results cannot be checked", [label(i), i]),
		"remediation": "run the check with relgate, which reads the files named in spec.evaluations",
	}
}

deny contains f if {
	some i, e in specs
	is_object(e)
	some role in sides
	s := side(i, role)
	err := s.error
	lib.non_empty_string(err)
	f := {
		"rule": "EVIDENCE-UNREADABLE",
		"path": sprintf("spec.evaluations[%d].%s.path", [i, role]),
		"msg": sprintf("%s: the %s results cannot be used: %s", [label(i), role, err]),
		"remediation": sprintf("point spec.evaluations[%d].%s.path at the %v output file, committed inside the gate root, and re-pin its digest", [i, role, object.get(e, "format", "(format)")]),
	}
}

# ---------------------------------------------------------------------------------------------
# EVIDENCE-DIGEST

deny contains f if {
	some i, e in specs
	is_object(e)
	some role in sides
	s := side(i, role)
	digest := s.digest
	is_string(digest)
	declared := declared_digest(e, role)
	lower(trim_space(digest)) != lower(trim_space(declared))
	f := {
		"rule": "EVIDENCE-DIGEST",
		"path": sprintf("spec.evaluations[%d].%s.digest", [i, role]),
		"msg": sprintf("%s: %s file %s has digest %s but the manifest pins %s", [label(i), role, file_of(s), digest, declared]),
		"remediation": sprintf("if the new results are intended, review them and set spec.evaluations[%d].%s.digest: %s; otherwise restore the pinned file", [i, role, digest]),
	}
}

deny contains f if {
	some i, e in specs
	is_object(e)
	some role in sides
	s := side(i, role)
	digest := s.digest
	is_string(digest)
	not declared_digest(e, role)
	f := {
		"rule": "EVIDENCE-DIGEST",
		"path": sprintf("spec.evaluations[%d].%s.digest", [i, role]),
		"msg": sprintf("%s: %s file %s is not pinned: the manifest gives no digest (the file's digest is %s)", [label(i), role, file_of(s), digest]),
		"remediation": sprintf("pin the results: set spec.evaluations[%d].%s.digest: %s (after reviewing the file)", [i, role, digest]),
	}
}

# ---------------------------------------------------------------------------------------------
# EVAL-MISSING

metric_names(s) := concat(", ", sort([n | some n, _ in s.metrics])) if {
	count(s.metrics) > 0
} else := "no metrics"

deny contains f if {
	some i, e in specs
	is_object(e)
	some name, t in thresholds_of(e)
	is_object(t)
	s := usable_side(i, "candidate")
	not metric(i, "candidate", name)
	f := {
		"rule": "EVAL-MISSING",
		"path": threshold_path(i, name),
		"msg": sprintf("%s: metric %s is not in the candidate results %s (they have: %s)", [label(i), name, file_of(s), metric_names(s)]),
		"remediation": "fix the metric name in thresholds (names are listed above, as relgate normalises them), or re-run the evaluation so it reports this metric",
	}
}

deny contains f if {
	some i, e in specs
	is_object(e)
	some name, t in thresholds_of(e)
	is_object(t)
	has_regression_bound(t)
	s := usable_side(i, "baseline")
	not metric(i, "baseline", name)
	f := {
		"rule": "EVAL-MISSING",
		"path": threshold_path(i, name),
		"msg": sprintf("%s: metric %s has a regression bound but is not in the baseline results %s (they have: %s)", [label(i), name, file_of(s), metric_names(s)]),
		"remediation": "use a baseline file that reports this metric (the same evaluation run on the baseline version)",
	}
}

deny contains f if {
	some i, e in specs
	is_object(e)
	some name, t in thresholds_of(e)
	is_object(t)
	has_regression_bound(t)
	not baseline_declared(e)
	f := {
		"rule": "EVAL-MISSING",
		"path": sprintf("spec.evaluations[%d].baseline", [i]),
		"msg": sprintf("%s: metric %s has a regression bound but no baseline results are declared, so the regression cannot be checked", [label(i), name]),
		"remediation": sprintf("add spec.evaluations[%d].baseline: {path, digest} with the same evaluation run on the baseline version, or remove the regression bound", [i]),
	}
}

# ---------------------------------------------------------------------------------------------
# EVAL-THRESHOLD

deny contains f if {
	some i, e in specs
	is_object(e)
	some name, t in thresholds_of(e)
	is_object(t)
	c := metric(i, "candidate", name)
	low := bound(t, "min")
	c.value < low
	f := {
		"rule": "EVAL-THRESHOLD",
		"path": sprintf("%s.min", [threshold_path(i, name)]),
		"msg": sprintf("%s: %s %s < min %s (candidate %s)", [label(i), name, shown(c.value, low), fmt(low), file_of(side(i, "candidate"))]),
		"remediation": sprintf("improve the candidate until %s >= %s; lowering the bound is a reviewed policy change", [name, fmt(low)]),
	}
}

deny contains f if {
	some i, e in specs
	is_object(e)
	some name, t in thresholds_of(e)
	is_object(t)
	c := metric(i, "candidate", name)
	high := bound(t, "max")
	c.value > high
	f := {
		"rule": "EVAL-THRESHOLD",
		"path": sprintf("%s.max", [threshold_path(i, name)]),
		"msg": sprintf("%s: %s %s > max %s (candidate %s)", [label(i), name, shown(c.value, high), fmt(high), file_of(side(i, "candidate"))]),
		"remediation": sprintf("improve the candidate until %s <= %s; raising the bound is a reviewed policy change", [name, fmt(high)]),
	}
}

# ---------------------------------------------------------------------------------------------
# EVAL-REGRESSION

# Two definitions rather than `r := metric(...)` `else := {}`: regorus' RVM (0.14) does not take
# an `else` when the body before it ends with an assignment whose value is undefined, so the
# missing record came out undefined and the direction finding below fired for every metric
# whose baseline (or candidate) record is absent. tests/it/rvm_differential.rs covers it through
# examples/demo/releases/models/assist-llm.yaml.
record_or_empty(i, role, name) := r if {
	r := metric(i, role, name)
}

record_or_empty(i, role, name) := {} if {
	not metric(i, role, name)
}

# The direction the manifest gives (the reviewed contract): its own higher_is_better, else `min`
# alone (higher is better) or `max` alone (lower is better).
manifest_direction(t) := d if {
	d := t.higher_is_better
	is_boolean(d)
} else := true if {
	bound(t, "min")
	not bound(t, "max")
} else := false if {
	bound(t, "max")
	not bound(t, "min")
}

# The direction the results state, when the records that state one agree.
results_direction(c, b) := d if {
	stated := {r.higher_is_better | some r in [c, b]; is_boolean(r.higher_is_better)}
	count(stated) == 1
	some d in stated
}

# The manifest's direction first: a results file (written by the pull request's author) may
# not turn a regression into an improvement the threshold's min or max rules out.
direction(t, c, b) := d if {
	d := manifest_direction(t)
} else := d if {
	d := results_direction(c, b)
}

# x > limit beyond float rounding: a difference of computed values (0.97 - 0.96) that equals
# the bound up to 1e-9 (relative) is at the bound, which passes.
exceeds(x, limit) if x - limit > 0.000000001 * max([1, abs(limit)])

# `direction` may be false, which `not direction(...)` would read as unknown.
direction_known(t, c, b) if {
	d := direction(t, c, b)
	is_boolean(d)
}

# How much worse the candidate is than the baseline (negative: better).
worse_by(true, c, b) := b - c

worse_by(false, c, b) := c - b

significance_applies(t, c, b) if {
	is_number(t.significance_z)
	is_number(c.stderr)
	is_number(b.stderr)
}

# The org's ceiling on significance_z (config evals.max_significance_z): the manifest sets z
# itself, and `significance_z: 1000` would excuse any regression as noise. A value that is not
# a number means the built-in 3.
max_significance_z := z if {
	z := object.get(cfg, ["evals", "max_significance_z"], null)
	is_number(z)
} else := 3

# The z applied: the manifest's, capped at the ceiling.
significance_z(t) := min([t.significance_z, max_significance_z])

capped_note(t) := sprintf(" (the manifest's %s, capped at evals.max_significance_z)", [fmt(t.significance_z)]) if {
	t.significance_z > max_significance_z
} else := ""

significant(t, c, b, _) if not significance_applies(t, c, b)

significant(t, c, b, worse) if {
	significance_applies(t, c, b)
	z := significance_z(t)
	worse > 0
	worse * worse > (z * z) * ((c.stderr * c.stderr) + (b.stderr * b.stderr))
}

significance_note(t, c, b) := sprintf(", and beyond significance_z %s%s x combined stderr %s = %s", [fmt(z), capped_note(t), fmt(se), fmt(z * se)]) if {
	significance_applies(t, c, b)
	z := significance_z(t)
	se := square_root((c.stderr * c.stderr) + (b.stderr * b.stderr))
} else := "; significance_z is ignored because the stderr of the candidate or the baseline is unknown" if {
	is_number(t.significance_z)
} else := ""

newton(s, g) := (g + (s / g)) / 2

newton8(s, g) := newton(s, newton(s, newton(s, newton(s, newton(s, newton(s, newton(s, newton(s, g))))))))

# sqrt by 40 Newton steps from max(s, 1): exact to float precision for 1e-12 <= s <= 1e12.
square_root(s) := 0 if s <= 0

square_root(s) := r if {
	s > 0
	r := newton8(s, newton8(s, newton8(s, newton8(s, newton8(s, max([s, 1]))))))
}

regression_remediation(name, key) := sprintf("fix the regression of %s; accepting it means changing %s in a reviewed change", [name, key])

deny contains f if {
	some i, e in specs
	is_object(e)
	some name, t in thresholds_of(e)
	is_object(t)
	limit := bound(t, "max_regression")
	c := metric(i, "candidate", name)
	b := metric(i, "baseline", name)
	d := direction(t, c, b)
	worse := worse_by(d, c.value, b.value)
	exceeds(worse, limit)
	significant(t, c, b, worse)
	f := {
		"rule": "EVAL-REGRESSION",
		"path": sprintf("%s.max_regression", [threshold_path(i, name)]),
		"msg": sprintf("%s: %s regressed by %s (%s vs baseline %s, %s), more than max_regression %s%s", [label(i), name, shown(worse, limit), fmt(c.value), fmt(b.value), direction_text(d), fmt(limit), significance_note(t, c, b)]),
		"remediation": regression_remediation(name, "max_regression"),
	}
}

deny contains f if {
	some i, e in specs
	is_object(e)
	some name, t in thresholds_of(e)
	is_object(t)
	limit := bound(t, "max_relative_regression")
	c := metric(i, "candidate", name)
	b := metric(i, "baseline", name)
	b.value != 0
	d := direction(t, c, b)
	worse := worse_by(d, c.value, b.value)
	relative := worse / abs(b.value)
	exceeds(relative, limit)
	significant(t, c, b, worse)
	f := {
		"rule": "EVAL-REGRESSION",
		"path": sprintf("%s.max_relative_regression", [threshold_path(i, name)]),
		"msg": sprintf("%s: %s regressed by %s%% relative to the baseline (%s vs baseline %s, %s), more than max_relative_regression %s (%s%%)%s", [label(i), name, fmt(relative * 100), fmt(c.value), fmt(b.value), direction_text(d), fmt(limit), fmt(limit * 100), significance_note(t, c, b)]),
		"remediation": regression_remediation(name, "max_relative_regression"),
	}
}

deny contains f if {
	some i, e in specs
	is_object(e)
	some name, t in thresholds_of(e)
	is_object(t)
	limit := bound(t, "max_relative_regression")
	c := metric(i, "candidate", name)
	b := metric(i, "baseline", name)
	b.value == 0
	d := direction(t, c, b)
	worse := worse_by(d, c.value, b.value)
	exceeds(worse, 0)
	significant(t, c, b, worse)
	f := {
		"rule": "EVAL-REGRESSION",
		"path": sprintf("%s.max_relative_regression", [threshold_path(i, name)]),
		"msg": sprintf("%s: %s is worse than a baseline of 0 (%s vs baseline 0, %s): relative to 0 any worsening is unbounded, more than max_relative_regression %s%s", [label(i), name, fmt(c.value), direction_text(d), fmt(limit), significance_note(t, c, b)]),
		"remediation": sprintf("fix the regression of %s; for a metric whose baseline can be 0, bound it with max_regression (absolute) instead", [name]),
	}
}

deny contains f if {
	some i, e in specs
	is_object(e)
	some name, t in thresholds_of(e)
	is_object(t)
	has_regression_bound(t)
	not direction_known(t, record_or_empty(i, "candidate", name), record_or_empty(i, "baseline", name))
	f := {
		"rule": "EVAL-REGRESSION",
		"path": sprintf("%s.higher_is_better", [threshold_path(i, name)]),
		"msg": sprintf("%s: cannot tell whether a higher or a lower %s is better (the threshold sets %s and the results do not say, or disagree), so its regression cannot be checked", [label(i), name, bounds_text(t)]),
		"remediation": sprintf("set higher_is_better: true or false on the %s threshold", [name]),
	}
}

# A results file that states the opposite of the direction the threshold's min or max implies:
# the threshold wins, but only once it says so itself, so a flag in a file of the pull request
# never silently decides whether a metric regressed.
deny contains f if {
	some i, e in specs
	is_object(e)
	some name, t in thresholds_of(e)
	is_object(t)
	has_regression_bound(t)
	not is_boolean(t.higher_is_better)
	implied := manifest_direction(t)
	some role in ["candidate", "baseline"]
	r := metric(i, role, name)
	is_boolean(r.higher_is_better)
	r.higher_is_better != implied
	f := {
		"rule": "EVAL-REGRESSION",
		"path": sprintf("%s.higher_is_better", [threshold_path(i, name)]),
		"msg": sprintf("%s: the %s results %s say %s for %s, but the threshold's %s says %s; the regression check would turn on which is right", [label(i), role, file_of(usable_side(i, role)), direction_text(r.higher_is_better), name, direction_key(t), direction_text(implied)]),
		"remediation": sprintf("set higher_is_better on the %s threshold to the metric's real direction, after checking the results", [name]),
	}
}

direction_key(t) := "min" if {
	bound(t, "min")
} else := "max"

# The baseline's results are the candidate's own (the same file, or a byte-for-byte copy: the
# same sha256): every regression bound then compares the candidate with itself and passes.
deny contains f if {
	some i, e in specs
	is_object(e)
	some _, t in thresholds_of(e)
	is_object(t)
	has_regression_bound(t)
	c := usable_side(i, "candidate")
	b := usable_side(i, "baseline")
	is_string(c.digest)
	lower(c.digest) == lower(b.digest)
	f := {
		"rule": "EVAL-REGRESSION",
		"path": sprintf("spec.evaluations[%d].baseline.path", [i]),
		"msg": sprintf("%s: the baseline results %s are the candidate results %s (the same sha256 %s), so a regression bound compares the candidate with itself", [label(i), file_of(b), file_of(c), c.digest]),
		"remediation": "point baseline.path at the results of the released (baseline) version, evaluated on the same suite",
	}
}

bounds_text(t) := "both min and max" if {
	bound(t, "min")
	bound(t, "max")
} else := "neither min nor max"

# ---------------------------------------------------------------------------------------------
# EVAL-SAMPLES

# The org's floor under min_samples (config evals.min_samples_floor, default 0 = none): the
# manifest states its own sample bound, or none. The bound applied is the larger of the two;
# with a floor above 0 it applies to evaluations that state none.
min_samples_floor := n if {
	n := object.get(cfg, ["evals", "min_samples_floor"], null)
	is_number(n)
} else := 0

min_samples(e) := max([n, min_samples_floor]) if {
	n := e.min_samples
	is_number(n)
} else := min_samples_floor if {
	min_samples_floor > 0
	not is_number(e.min_samples)
}

samples_of(r, s) := n if {
	n := r.samples
	is_number(n)
} else := n if {
	n := s.samples
	is_number(n)
}

deny contains f if {
	some i, e in specs
	is_object(e)
	need := min_samples(e)
	s := usable_side(i, "candidate")
	some name, t in thresholds_of(e)
	is_object(t)
	r := metric(i, "candidate", name)
	have := samples_of(r, s)
	have < need
	f := {
		"rule": "EVAL-SAMPLES",
		"path": sprintf("spec.evaluations[%d].min_samples", [i]),
		"msg": sprintf("%s: %s was computed from %s, fewer than min_samples %s (candidate %s)", [label(i), name, samples_count_text(have), fmt(need), file_of(s)]),
		"remediation": sprintf("evaluate the candidate on at least %s samples", [fmt(need)]),
	}
}

deny contains f if {
	some i, e in specs
	is_object(e)
	need := min_samples(e)
	s := usable_side(i, "candidate")
	some name, t in thresholds_of(e)
	is_object(t)
	r := metric(i, "candidate", name)
	not samples_of(r, s)
	f := {
		"rule": "EVAL-SAMPLES",
		"path": sprintf("spec.evaluations[%d].min_samples", [i]),
		"msg": sprintf("%s: the sample count of %s is unknown (%s does not record it), so min_samples %s cannot be checked", [label(i), name, file_of(s), fmt(need)]),
		"remediation": "use a format that records sample counts (e.g. the plain metrics format with a samples column), or remove min_samples",
	}
}

deny contains f if {
	some i, e in specs
	is_object(e)
	need := min_samples(e)
	count(thresholds_of(e)) == 0
	s := usable_side(i, "candidate")
	not enough_samples(s, need)
	f := {
		"rule": "EVAL-SAMPLES",
		"path": sprintf("spec.evaluations[%d].min_samples", [i]),
		"msg": sprintf("%s: the candidate results %s cover %s samples, fewer than min_samples %s", [label(i), file_of(s), samples_text(s), fmt(need)]),
		"remediation": sprintf("evaluate the candidate on at least %s samples", [fmt(need)]),
	}
}

enough_samples(s, need) if {
	is_number(s.samples)
	s.samples >= need
}

samples_count_text(1) := "1 sample"

samples_count_text(n) := sprintf("%s samples", [fmt(n)]) if n != 1

samples_text(s) := fmt(s.samples) if {
	is_number(s.samples)
} else := "an unknown number of"

# ---------------------------------------------------------------------------------------------
# EVAL-PROMPT-MISMATCH

# Every prompt file of the repository relgate recorded, whatever spec.prompt.registry says
# (one for any registry when spec.prompt.path or .uri names a repository file).
git_prompt_digests := {lower(trim_space(a.digest)) |
	kind == "PromptRelease"
	some a in artifacts
	is_object(a)
	a.role == "prompt"
	is_string(a.digest)
}

prompt_file := p if {
	p := object.get(manifest, ["spec", "prompt", "path"], null)
	is_string(p)
} else := "the prompt file"

recorded_digests(s) := {lower(d) | some d in lib.as_list(object.get(s, "prompt_digests", [])); is_string(d)}

promptfoo_candidate(i) := s if {
	is_object(specs[i])
	object.get(specs[i], "format", "") == "promptfoo"
	s := usable_side(i, "candidate")
}

prompt_remediation := sprintf("re-run promptfoo with the prompt file of this release (prompts: [file://%s]) and pin the new results, or point the evaluation at the results of this prompt", [prompt_file])

deny contains f if {
	some i, _ in specs
	s := promptfoo_candidate(i)
	recorded := recorded_digests(s)
	count(recorded) > 0
	some git in git_prompt_digests
	not git in recorded
	f := {
		"rule": "EVAL-PROMPT-MISMATCH",
		"path": sprintf("spec.evaluations[%d].candidate.path", [i]),
		"msg": sprintf("%s: the promptfoo results %s were not produced for this prompt: %s has digest %s, but the prompt texts recorded in the results hash to %s (each text with and without a final newline)", [label(i), file_of(s), prompt_file, git, concat(", ", sort(recorded))]),
		"remediation": prompt_remediation,
	}
}

deny contains f if {
	some i, _ in specs
	s := promptfoo_candidate(i)
	count(recorded_digests(s)) == 0
	count(git_prompt_digests) > 0
	f := {
		"rule": "EVAL-PROMPT-MISMATCH",
		"path": sprintf("spec.evaluations[%d].candidate.path", [i]),
		"msg": sprintf("%s: the promptfoo results %s record no prompt text (prompts[].raw), so nothing shows they were produced for %s", [label(i), file_of(s), prompt_file]),
		"remediation": prompt_remediation,
	}
}

deny contains f if {
	some i, _ in specs
	s := promptfoo_candidate(i)
	n := object.get(s, "prompt_count", 0)
	is_number(n)
	n > 1
	count(git_prompt_digests) > 0
	f := {
		"rule": "EVAL-PROMPT-MISMATCH",
		"path": sprintf("spec.evaluations[%d].candidate.path", [i]),
		"msg": sprintf("%s: the promptfoo results %s hold %d different prompts, and their metrics mix the results of all of them", [label(i), file_of(s), n]),
		"remediation": prompt_remediation,
	}
}

# ---------------------------------------------------------------------------------------------
# EVAL-MODEL-MISMATCH

binding := b if {
	kind == "PromptRelease"
	b := object.get(manifest, ["spec", "prompt", "model_binding"], null)
	is_object(b)
	lib.non_empty_string(b.model)
}

# The models the prompt may run on: the bound one and its fallback, each {provider, model}.
bound_models contains {"provider": lower(trim_space(object.get(binding, "provider", ""))), "model": lower(trim_space(binding.model))} if binding

bound_models contains {"provider": lower(trim_space(object.get(fb, "provider", ""))), "model": lower(trim_space(fb.model))} if {
	fb := binding.fallback
	is_object(fb)
	lib.non_empty_string(fb.model)
}

names_model(id, m) if lower(trim_space(id)) == m.model

names_model(id, m) if lower(trim_space(id)) == sprintf("%s/%s", [m.provider, m.model])

names_model(id, m) if {
	m.provider != ""
	x := lower(trim_space(id))
	startswith(x, sprintf("%s:", [m.provider]))
	endswith(x, sprintf(":%s", [m.model]))
}

bound_text := concat(" or ", sort([t |
	some m in bound_models
	t := sprintf("%s/%s", [m.provider, m.model])
]))

deny contains f if {
	count(bound_models) > 0
	some i, _ in specs
	s := usable_side(i, "candidate")
	models := [m | some m in lib.as_list(object.get(s, "models", [])); is_string(m)]
	others := sort([id |
		some id in models
		not any_bound(id)
	])
	count(others) > 0
	f := {
		"rule": "EVAL-MODEL-MISMATCH",
		"path": sprintf("spec.evaluations[%d].candidate.path", [i]),
		"msg": sprintf("%s: the results %s come from %s, but the release binds the prompt to %s (spec.prompt.model_binding)", [label(i), file_of(s), concat(", ", others), bound_text]),
		"remediation": sprintf("run the evaluation against the bound model (%s, its pinned name rather than an alias) and pin the new results, or bind the model that was evaluated", [bound_text]),
	}
}

deny contains f if {
	count(bound_models) > 0
	some i, _ in specs
	s := usable_side(i, "candidate")
	s.models_complete == false
	f := {
		"rule": "EVAL-MODEL-MISMATCH",
		"path": sprintf("spec.evaluations[%d].candidate.path", [i]),
		"msg": sprintf("%s: results in %s name no model (a promptfoo result without a provider, an Inspect log without eval.model), so nothing shows they came from %s (spec.prompt.model_binding)", [label(i), file_of(s), bound_text]),
		"remediation": sprintf("pin results as the tool wrote them, which name their model, run against %s", [bound_text]),
	}
}

any_bound(id) if {
	some m in bound_models
	names_model(id, m)
}

