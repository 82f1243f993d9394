package relgate.evals

# Unit tests for relgate.evals. `base_manifest` with `base_evidence` (what relgate gathers for
# it) passes every rule; each test patches one of them.

prompt_digest := "sha256:7cbf00640e10d44528380e3662dbc83637498ff474a05ce33eae0bff1aaf65f2"

other_prompt_digest := "sha256:1111111111111111111111111111111111111111111111111111111111111111"

cand_digest := "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

base_digest := "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

base_manifest := {
	"apiVersion": "relgate.dev/v1",
	"kind": "PromptRelease",
	"metadata": {"name": "support-answer", "version": "17", "environment": "production", "tier": 1},
	"spec": {
		"prompt": {"registry": "git", "path": "prompts/answer.prompt", "digest": prompt_digest},
		"evaluations": [{
			"id": "regression",
			"format": "promptfoo",
			"candidate": {"path": "evals/answer-v17.json", "digest": cand_digest},
			"baseline": {"path": "evals/answer-v15.json", "digest": base_digest},
			"thresholds": {
				"pass_rate": {"min": 0.95, "max_regression": 0.01},
				"latency_p95_ms": {"max": 3000},
			},
			"min_samples": 100,
		}],
	},
}

rec(name, value, stderr, samples, hib) := {"metric": name, "value": value, "stderr": stderr, "samples": samples, "higher_is_better": hib}

cand_side := {
	"path": "evals/answer-v17.json",
	"declared_digest": cand_digest,
	"digest": cand_digest,
	"error": null,
	"metrics": {
		"pass_rate": rec("pass_rate", 0.96, 0.01, 200, true),
		"latency_p95_ms": rec("latency_p95_ms", 2500, null, 200, false),
		"score": rec("score", 0.9, 0.02, 200, true),
	},
	"samples": 200,
	"prompt_ids": ["7cbf00640e10d44528380e3662dbc83637498ff474a05ce33eae0bff1aaf65f2"],
	"prompt_digests": [prompt_digest, "sha256:9ae536c938e6e2a63123dc66c57d6cf1f5d55be0b1b0e940f258033e39e35e1b"],
	"prompt_count": 1,
}

base_side := {
	"path": "evals/answer-v15.json",
	"declared_digest": base_digest,
	"digest": base_digest,
	"error": null,
	"metrics": {
		"pass_rate": rec("pass_rate", 0.965, 0.01, 200, true),
		"latency_p95_ms": rec("latency_p95_ms", 2400, null, 200, false),
	},
	"samples": 200,
	"prompt_ids": [],
	"prompt_digests": [],
	"prompt_count": 1,
}

prompt_artifact := {"role": "prompt", "path": "prompts/answer.prompt", "declared_digest": prompt_digest, "digest": prompt_digest, "error": null}

ev_doc(cand, base) := {
	"artifacts": [prompt_artifact],
	"evaluations": [{"id": "regression", "index": 0, "format": "promptfoo", "candidate": cand, "baseline": base}],
	"slo": [],
}

base_evidence := ev_doc(cand_side, base_side)

findings(m, ev) := fs if {
	fs := deny with input as {"manifest": m, "evidence": ev}
}

of_rule(fs, rule) := {f | some f in fs; f.rule == rule}

paths(fs, rule) := {f.path | some f in of_rule(fs, rule)}

rules(fs) := {f.rule | some f in fs}

# The only finding of a rule, or undefined.
one(fs, rule) := f if {
	matching := of_rule(fs, rule)
	count(matching) == 1
	some f in matching
}

patch(doc, path, value) := json.patch(doc, [{"op": "add", "path": path, "value": value}])

remove(doc, path) := json.patch(doc, [{"op": "remove", "path": path}])

# manifest with thresholds[name] := t
threshold(name, t) := patch(base_manifest, sprintf("/spec/evaluations/0/thresholds/%s", [name]), t)

# evidence with the candidate (or baseline) metric record `name` := r
cand_metric(ev, name, r) := patch(ev, sprintf("/evaluations/0/candidate/metrics/%s", [name]), r)

base_metric(ev, name, r) := patch(ev, sprintf("/evaluations/0/baseline/metrics/%s", [name]), r)

pass_rates(c, b) := base_metric(cand_metric(base_evidence, "pass_rate", c), "pass_rate", b)

# --- the fixture -----------------------------------------------------------------------------

test_base_passes if {
	count(findings(base_manifest, base_evidence)) == 0
}

test_no_evaluations_nothing_to_check if {
	m := remove(base_manifest, "/spec/evaluations")
	count(findings(m, {"artifacts": [prompt_artifact], "evaluations": []})) == 0
}

# --- number formatting -----------------------------------------------------------------------

test_fmt_rounds_to_four_significant_digits if {
	fmt(0.912) == "0.912"
	fmt(0.946 - 0.912) == "0.034"
	fmt(0.95) == "0.95"
	fmt(1.0) == "1"
	fmt(3000) == "3000"
	fmt(3210.5) == "3211"
	fmt(123.456) == "123.5"
	fmt(0.00099525) == "0.0009953"
	fmt(-0.5) == "-0.5"
	fmt(0) == "0"
	fmt(12.5) == "12.5"
	fmt(0.000051234) == "0.00005123"
	fmt(-0.0000001) == "-0.0000001"
	trimmed("-0.000") == "0"
	trimmed("3211") == "3211"
}

test_shown_keeps_precision_when_rounding_would_hide_the_difference if {
	shown(0.94996, 0.95) == "0.94996"
	shown(0.91, 0.95) == "0.91"
}

test_square_root if {
	abs(square_root(2) - 1.4142135623730951) < 0.000000000001
	abs(square_root(0.0002) - 0.01414213562373095) < 0.000000000001
	abs(square_root(1000000000000) - 1000000) < 0.000001
	square_root(0) == 0
}

# --- EVAL-THRESHOLD --------------------------------------------------------------------------

test_threshold_min if {
	ev := pass_rates(rec("pass_rate", 0.91, 0.01, 200, true), rec("pass_rate", 0.91, 0.01, 200, true))
	f := one(findings(base_manifest, ev), "EVAL-THRESHOLD")
	f.path == "spec.evaluations[0].thresholds.pass_rate.min"
	f.msg == "evaluation regression: pass_rate 0.91 < min 0.95 (candidate evals/answer-v17.json)"
}

test_threshold_min_exact_boundary_passes if {
	ev := pass_rates(rec("pass_rate", 0.95, 0.01, 200, true), rec("pass_rate", 0.95, 0.01, 200, true))
	count(findings(base_manifest, ev)) == 0
}

test_threshold_shows_precision_near_the_bound if {
	ev := pass_rates(rec("pass_rate", 0.94996, 0.01, 200, true), rec("pass_rate", 0.95, 0.01, 200, true))
	f := one(findings(base_manifest, ev), "EVAL-THRESHOLD")
	contains(f.msg, "pass_rate 0.94996 < min 0.95")
}

test_threshold_max_lower_is_better if {
	ev := cand_metric(base_evidence, "latency_p95_ms", rec("latency_p95_ms", 3210.5, null, 200, false))
	f := one(findings(base_manifest, ev), "EVAL-THRESHOLD")
	f.path == "spec.evaluations[0].thresholds.latency_p95_ms.max"
	contains(f.msg, "latency_p95_ms 3211 > max 3000")
}

test_threshold_max_exact_boundary_passes if {
	ev := cand_metric(base_evidence, "latency_p95_ms", rec("latency_p95_ms", 3000, null, 200, false))
	count(findings(base_manifest, ev)) == 0
}

test_threshold_quoted_metric_name if {
	m := threshold("namedScores.Tone", {"min": 0.8})
	ev := cand_metric(base_evidence, "namedScores.Tone", rec("namedScores.Tone", 0.5, null, 200, true))
	f := one(findings(m, ev), "EVAL-THRESHOLD")
	f.path == `spec.evaluations[0].thresholds["namedScores.Tone"].min`
}

# --- EVAL-REGRESSION -------------------------------------------------------------------------

relaxed_min := threshold("pass_rate", {"min": 0.9, "max_regression": 0.01})

test_regression_absolute if {
	ev := pass_rates(rec("pass_rate", 0.912, 0.01, 200, true), rec("pass_rate", 0.946, 0.01, 200, true))
	fs := findings(relaxed_min, ev)
	rules(fs) == {"EVAL-REGRESSION"}
	f := one(fs, "EVAL-REGRESSION")
	f.path == "spec.evaluations[0].thresholds.pass_rate.max_regression"
	f.msg == "evaluation regression: pass_rate regressed by 0.034 (0.912 vs baseline 0.946, higher is better), more than max_regression 0.01"
}

test_regression_exact_boundary_passes if {
	# 0.97 - 0.96 is 0.010000000000000009 in floating point: at the bound, not beyond it
	ev := pass_rates(rec("pass_rate", 0.96, 0.01, 200, true), rec("pass_rate", 0.97, 0.01, 200, true))
	count(findings(relaxed_min, ev)) == 0
	ev2 := pass_rates(rec("pass_rate", 0.5, 0.01, 200, true), rec("pass_rate", 0.75, 0.01, 200, true))
	m := threshold("pass_rate", {"max_regression": 0.25, "higher_is_better": true})
	count(findings(m, ev2)) == 0
}

test_regression_improvement_passes if {
	ev := pass_rates(rec("pass_rate", 0.99, 0.01, 200, true), rec("pass_rate", 0.95, 0.01, 200, true))
	count(findings(base_manifest, ev)) == 0
}

test_regression_lower_is_better_latency if {
	m := threshold("latency_p95_ms", {"max": 3000, "max_regression": 100})
	worse := cand_metric(base_evidence, "latency_p95_ms", rec("latency_p95_ms", 2600, null, 200, false))
	f := one(findings(m, worse), "EVAL-REGRESSION")
	f.path == "spec.evaluations[0].thresholds.latency_p95_ms.max_regression"
	contains(f.msg, "latency_p95_ms regressed by 200 (2600 vs baseline 2400, lower is better), more than max_regression 100")
	better := cand_metric(base_evidence, "latency_p95_ms", rec("latency_p95_ms", 2200, null, 200, false))
	count(findings(m, better)) == 0
}

test_regression_direction_inferred_from_max if {
	# records without a direction; `max` alone says lower is better
	m := threshold("latency_p95_ms", {"max": 3000, "max_regression": 100})
	ev := base_metric(
		cand_metric(base_evidence, "latency_p95_ms", rec("latency_p95_ms", 2600, null, 200, null)),
		"latency_p95_ms", rec("latency_p95_ms", 2400, null, 200, null),
	)
	f := one(findings(m, ev), "EVAL-REGRESSION")
	contains(f.msg, "lower is better")
}

test_regression_threshold_direction_overrides_record if {
	m := threshold("pass_rate", {"max_regression": 0.01, "higher_is_better": false})
	ev := pass_rates(rec("pass_rate", 0.99, 0.01, 200, true), rec("pass_rate", 0.965, 0.01, 200, true))
	f := one(findings(m, ev), "EVAL-REGRESSION")
	contains(f.msg, "regressed by 0.025 (0.99 vs baseline 0.965, lower is better)")
}

test_regression_relative if {
	m := threshold("pass_rate", {"min": 0.8, "max_relative_regression": 0.02})
	ev := pass_rates(rec("pass_rate", 0.9, 0.01, 200, true), rec("pass_rate", 0.95, 0.01, 200, true))
	f := one(findings(m, ev), "EVAL-REGRESSION")
	f.path == "spec.evaluations[0].thresholds.pass_rate.max_relative_regression"
	f.msg == "evaluation regression: pass_rate regressed by 5.263% relative to the baseline (0.9 vs baseline 0.95, higher is better), more than max_relative_regression 0.02 (2%)"
	ok := pass_rates(rec("pass_rate", 0.94, 0.01, 200, true), rec("pass_rate", 0.95, 0.01, 200, true))
	count(findings(m, ok)) == 0
}

test_regression_relative_baseline_zero if {
	m := threshold("error_rate", {"max": 0.1, "max_relative_regression": 0.5})
	with_base := base_metric(base_evidence, "error_rate", rec("error_rate", 0, null, 200, null))
	worse := cand_metric(with_base, "error_rate", rec("error_rate", 0.01, null, 200, null))
	f := one(findings(m, worse), "EVAL-REGRESSION")
	f.path == "spec.evaluations[0].thresholds.error_rate.max_relative_regression"
	contains(f.msg, "error_rate is worse than a baseline of 0 (0.01 vs baseline 0, lower is better)")
	same := cand_metric(with_base, "error_rate", rec("error_rate", 0, null, 200, null))
	count(findings(m, same)) == 0
}

test_regression_not_significant_passes if {
	m := threshold("pass_rate", {"min": 0.9, "max_regression": 0.01, "significance_z": 1.96})
	# 1.96 * sqrt(0.02^2 + 0.02^2) = 0.0554 > 0.034: within noise
	ev := pass_rates(rec("pass_rate", 0.912, 0.02, 200, true), rec("pass_rate", 0.946, 0.02, 200, true))
	count(findings(m, ev)) == 0
}

test_regression_significant_fires if {
	m := threshold("pass_rate", {"min": 0.9, "max_regression": 0.01, "significance_z": 1.96})
	# 1.96 * sqrt(0.005^2 + 0.005^2) = 0.01386 < 0.034
	ev := pass_rates(rec("pass_rate", 0.912, 0.005, 200, true), rec("pass_rate", 0.946, 0.005, 200, true))
	f := one(findings(m, ev), "EVAL-REGRESSION")
	endswith(f.msg, "more than max_regression 0.01, and beyond significance_z 1.96 x combined stderr 0.007071 = 0.01386")
}

test_regression_missing_stderr_ignores_significance_z if {
	m := threshold("pass_rate", {"min": 0.9, "max_regression": 0.01, "significance_z": 1.96})
	ev := pass_rates(rec("pass_rate", 0.912, null, 200, true), rec("pass_rate", 0.946, 0.02, 200, true))
	f := one(findings(m, ev), "EVAL-REGRESSION")
	endswith(f.msg, "significance_z is ignored because the stderr of the candidate or the baseline is unknown")
}

test_regression_direction_unknown if {
	m := threshold("score", {"max_regression": 0.01})
	ev := base_metric(
		cand_metric(base_evidence, "score", rec("score", 0.9, null, 200, null)),
		"score", rec("score", 0.9, null, 200, null),
	)
	f := one(findings(m, ev), "EVAL-REGRESSION")
	f.path == "spec.evaluations[0].thresholds.score.higher_is_better"
	contains(f.msg, "neither min nor max")
	m2 := threshold("score", {"min": 0.5, "max": 1, "max_regression": 0.01})
	f2 := one(findings(m2, ev), "EVAL-REGRESSION")
	contains(f2.msg, "both min and max")
}

test_regression_direction_from_record if {
	# the candidate record says higher is better: no direction finding, no regression
	m := threshold("score", {"max_regression": 0.01})
	ev := base_metric(base_evidence, "score", rec("score", 0.9, null, 200, null))
	count(findings(m, ev)) == 0
}

test_a_results_file_cannot_flip_the_direction_min_implies if {
	# min says higher is better; the candidate's file says lower: its 0.60 against 0.90 is still
	# a regression, and the contradiction is a finding of its own
	m := threshold("score", {"min": 0.5, "max_regression": 0.01})
	ev := base_metric(
		cand_metric(base_evidence, "score", rec("score", 0.6, null, 200, false)),
		"score", rec("score", 0.9, null, 200, true),
	)
	fs := of_rule(findings(m, ev), "EVAL-REGRESSION")
	count(fs) == 2
	some regressed in fs
	regressed.path == "spec.evaluations[0].thresholds.score.max_regression"
	contains(regressed.msg, "regressed by 0.3 (0.6 vs baseline 0.9, higher is better)")
	some flipped in fs
	flipped.path == "spec.evaluations[0].thresholds.score.higher_is_better"
	flipped.msg == "evaluation regression: the candidate results evals/answer-v17.json say lower is better for score, but the threshold's min says higher is better; the regression check would turn on which is right"
}

test_an_explicit_threshold_direction_wins_without_a_finding if {
	m := threshold("score", {"min": 0.5, "max_regression": 0.01, "higher_is_better": true})
	ev := base_metric(
		cand_metric(base_evidence, "score", rec("score", 0.95, null, 200, false)),
		"score", rec("score", 0.9, null, 200, false),
	)
	count(findings(m, ev)) == 0
}

test_results_that_disagree_leave_the_direction_unknown if {
	m := threshold("score", {"max_regression": 0.01})
	ev := base_metric(
		cand_metric(base_evidence, "score", rec("score", 0.95, null, 200, false)),
		"score", rec("score", 0.9, null, 200, true),
	)
	f := one(findings(m, ev), "EVAL-REGRESSION")
	f.path == "spec.evaluations[0].thresholds.score.higher_is_better"
	contains(f.msg, "do not say, or disagree")
}

test_results_that_agree_give_the_direction_a_silent_threshold_lacks if {
	m := threshold("score", {"max_regression": 0.01})
	ev := base_metric(
		cand_metric(base_evidence, "score", rec("score", 0.95, null, 200, false)),
		"score", rec("score", 0.9, null, 200, false),
	)
	f := one(findings(m, ev), "EVAL-REGRESSION")
	contains(f.msg, "regressed by 0.05 (0.95 vs baseline 0.9, lower is better)")
}

test_a_candidate_cannot_be_its_own_baseline if {
	# The candidate's results as the baseline too: every regression bound compares it with itself.
	ev := ev_doc(cand_side, object.union(cand_side, {"declared_digest": cand_digest}))
	m := json.patch(base_manifest, [{"op": "replace", "path": "/spec/evaluations/0/baseline", "value": {"path": "evals/answer-v17.json", "digest": cand_digest}}])
	fs := [f | some f in findings(m, ev); f.path == "spec.evaluations[0].baseline.path"]
	count(fs) == 1
	fs[0].rule == "EVAL-REGRESSION"
	contains(fs[0].msg, "are the candidate results evals/answer-v17.json (the same sha256")
	# Without a regression bound there is nothing to compare, and nothing fires.
	no_bound := json.patch(m, [{"op": "remove", "path": "/spec/evaluations/0/thresholds/pass_rate/max_regression"}])
	count([f | some f in findings(no_bound, ev); f.path == "spec.evaluations[0].baseline.path"]) == 0
}

# --- EVAL-MISSING ----------------------------------------------------------------------------

test_missing_in_candidate if {
	m := threshold("namedScores.Tone", {"min": 0.8})
	f := one(findings(m, base_evidence), "EVAL-MISSING")
	f.path == `spec.evaluations[0].thresholds["namedScores.Tone"]`
	f.msg == "evaluation regression: metric namedScores.Tone is not in the candidate results evals/answer-v17.json (they have: latency_p95_ms, pass_rate, score)"
}

test_missing_in_baseline_with_regression_bound if {
	m := threshold("score", {"min": 0.5, "max_regression": 0.05})
	f := one(findings(m, base_evidence), "EVAL-MISSING")
	f.path == "spec.evaluations[0].thresholds.score"
	contains(f.msg, "is not in the baseline results evals/answer-v15.json (they have: latency_p95_ms, pass_rate)")
}

test_missing_in_baseline_without_regression_bound_passes if {
	m := threshold("score", {"min": 0.5})
	count(findings(m, base_evidence)) == 0
}

test_missing_baseline_declaration if {
	m := remove(base_manifest, "/spec/evaluations/0/baseline")
	ev := patch(base_evidence, "/evaluations/0/baseline", null)
	f := one(findings(m, ev), "EVAL-MISSING")
	f.path == "spec.evaluations[0].baseline"
	contains(f.msg, "pass_rate has a regression bound but no baseline results are declared")
}

test_no_baseline_needed_without_regression_bounds if {
	m := remove(threshold("pass_rate", {"min": 0.95}), "/spec/evaluations/0/baseline")
	ev := patch(base_evidence, "/evaluations/0/baseline", null)
	count(findings(m, ev)) == 0
}

# --- EVAL-SAMPLES ----------------------------------------------------------------------------

test_samples_too_few if {
	ev := cand_metric(base_evidence, "latency_p95_ms", rec("latency_p95_ms", 2500, null, 50, false))
	f := one(findings(base_manifest, ev), "EVAL-SAMPLES")
	f.path == "spec.evaluations[0].min_samples"
	f.msg == "evaluation regression: latency_p95_ms was computed from 50 samples, fewer than min_samples 100 (candidate evals/answer-v17.json)"
}

test_samples_exact_boundary_passes if {
	ev := cand_metric(base_evidence, "latency_p95_ms", rec("latency_p95_ms", 2500, null, 100, false))
	count(findings(base_manifest, ev)) == 0
}

test_samples_fall_back_to_file_count if {
	ev := cand_metric(base_evidence, "latency_p95_ms", rec("latency_p95_ms", 2500, null, null, false))
	count(findings(base_manifest, ev)) == 0
	ev2 := patch(ev, "/evaluations/0/candidate/samples", 20)
	f := one(findings(base_manifest, ev2), "EVAL-SAMPLES")
	contains(f.msg, "latency_p95_ms was computed from 20 samples")
	ev3 := patch(ev, "/evaluations/0/candidate/samples", 1)
	f3 := one(findings(base_manifest, ev3), "EVAL-SAMPLES")
	contains(f3.msg, "latency_p95_ms was computed from 1 sample, fewer than min_samples 100")
}

test_samples_unknown if {
	ev := patch(cand_metric(base_evidence, "latency_p95_ms", rec("latency_p95_ms", 2500, null, null, false)), "/evaluations/0/candidate/samples", null)
	f := one(findings(base_manifest, ev), "EVAL-SAMPLES")
	contains(f.msg, "the sample count of latency_p95_ms is unknown")
}

test_samples_without_thresholds if {
	m := patch(base_manifest, "/spec/evaluations/0/thresholds", {})
	count(findings(m, base_evidence)) == 0
	f := one(findings(m, patch(base_evidence, "/evaluations/0/candidate/samples", 10)), "EVAL-SAMPLES")
	contains(f.msg, "cover 10 samples, fewer than min_samples 100")
}

# --- EVIDENCE-DIGEST -------------------------------------------------------------------------

test_digest_mismatch_candidate if {
	ev := patch(base_evidence, "/evaluations/0/candidate/digest", other_prompt_digest)
	f := one(findings(base_manifest, ev), "EVIDENCE-DIGEST")
	f.path == "spec.evaluations[0].candidate.digest"
	f.msg == sprintf("evaluation regression: candidate file evals/answer-v17.json has digest %s but the manifest pins %s", [other_prompt_digest, cand_digest])
	contains(f.remediation, other_prompt_digest)
}

test_digest_mismatch_baseline if {
	ev := patch(base_evidence, "/evaluations/0/baseline/digest", other_prompt_digest)
	paths(findings(base_manifest, ev), "EVIDENCE-DIGEST") == {"spec.evaluations[0].baseline.digest"}
}

test_digest_compare_is_case_insensitive if {
	ev := patch(base_evidence, "/evaluations/0/candidate/digest", upper(cand_digest))
	count(findings(base_manifest, ev)) == 0
}

test_digest_not_pinned if {
	m := remove(base_manifest, "/spec/evaluations/0/candidate/digest")
	f := one(findings(m, base_evidence), "EVIDENCE-DIGEST")
	f.path == "spec.evaluations[0].candidate.digest"
	contains(f.msg, "is not pinned")
	contains(f.remediation, cand_digest)
}

# --- EVIDENCE-UNREADABLE ---------------------------------------------------------------------

unreadable(ev, role, message) := patch(patch(ev, sprintf("/evaluations/0/%s/error", [role]), message), sprintf("/evaluations/0/%s/metrics", [role]), {})

test_unreadable_candidate if {
	err := "evals/answer-v17.json: invalid JSON at line 3, column 7: expected value"
	fs := findings(base_manifest, unreadable(base_evidence, "candidate", err))
	# the side is not checked further: no EVAL-MISSING / EVAL-SAMPLES noise
	rules(fs) == {"EVIDENCE-UNREADABLE"}
	f := one(fs, "EVIDENCE-UNREADABLE")
	f.path == "spec.evaluations[0].candidate.path"
	f.msg == sprintf("evaluation regression: the candidate results cannot be used: %s", [err])
}

test_unreadable_baseline if {
	err := "evals/answer-v15.json: the path leaves the gate root"
	fs := findings(base_manifest, patch(unreadable(base_evidence, "baseline", err), "/evaluations/0/baseline/digest", null))
	rules(fs) == {"EVIDENCE-UNREADABLE"}
	paths(fs, "EVIDENCE-UNREADABLE") == {"spec.evaluations[0].baseline.path"}
}

test_no_evidence_gathered if {
	fs := findings(base_manifest, {"artifacts": [prompt_artifact], "evaluations": []})
	rules(fs) == {"EVIDENCE-UNREADABLE"}
	paths(fs, "EVIDENCE-UNREADABLE") == {"spec.evaluations[0]"}
	count(findings(base_manifest, {})) == 1
}

# --- EVAL-PROMPT-MISMATCH --------------------------------------------------------------------

test_prompt_mismatch if {
	ev := patch(base_evidence, "/artifacts/0/digest", other_prompt_digest)
	f := one(findings(base_manifest, ev), "EVAL-PROMPT-MISMATCH")
	f.path == "spec.evaluations[0].candidate.path"
	contains(f.msg, sprintf("were not produced for this prompt: prompts/answer.prompt has digest %s", [other_prompt_digest]))
	contains(f.msg, prompt_digest)
}

test_prompt_match_is_case_insensitive if {
	ev := patch(base_evidence, "/artifacts/0/digest", upper(prompt_digest))
	count(findings(base_manifest, ev)) == 0
}

test_prompt_not_recorded if {
	ev := patch(base_evidence, "/evaluations/0/candidate/prompt_digests", [])
	f := one(findings(base_manifest, ev), "EVAL-PROMPT-MISMATCH")
	contains(f.msg, "record no prompt text")
}

test_prompt_results_mix_prompts if {
	ev := patch(patch(base_evidence, "/evaluations/0/candidate/prompt_count", 2), "/evaluations/0/candidate/prompt_digests", [prompt_digest, other_prompt_digest])
	f := one(findings(base_manifest, ev), "EVAL-PROMPT-MISMATCH")
	contains(f.msg, "hold 2 different prompts")
}

# A prompt file in the repository is compared whatever spec.prompt.registry says: relgate
# records its artifact for every registry, and `registry: other` must not skip the check.
test_prompt_checked_whatever_the_registry if {
	ev := patch(base_evidence, "/artifacts/0/digest", other_prompt_digest)
	some registry in ["langfuse", "mlflow", "other"]
	m := patch(base_manifest, "/spec/prompt/registry", registry)
	f := one(findings(m, ev), "EVAL-PROMPT-MISMATCH")
	contains(f.msg, other_prompt_digest)
}

test_prompt_not_checked_without_prompt_artifact if {
	ev := patch(base_evidence, "/artifacts/0/digest", other_prompt_digest)
	model := json.patch(base_manifest, [{"op": "replace", "path": "/kind", "value": "ModelRelease"}])
	count(findings(model, ev)) == 0
	# a prompt kept only in a registry: relgate records no artifact
	langfuse := patch(base_manifest, "/spec/prompt/registry", "langfuse")
	count(findings(langfuse, patch(ev, "/artifacts", []))) == 0
	other_format := patch(base_manifest, "/spec/evaluations/0/format", "metrics")
	count(findings(other_format, ev)) == 0
	# an unreadable prompt file is ARTIFACT-DIGEST's business (relgate.release)
	count(findings(base_manifest, patch(ev, "/artifacts/0/digest", null))) == 0
}

# --- robustness ------------------------------------------------------------------------------

test_malformed_input_does_not_error if {
	count(findings({}, {})) == 0
	count(findings({"spec": {"evaluations": "x"}}, {"evaluations": null})) == 0
	m := {"kind": "PromptRelease", "spec": {"prompt": "x", "evaluations": [null, 3, {"thresholds": [1]}, {"candidate": "x", "thresholds": {"a": null, "b": {"min": "0.9"}}}]}}
	ev := {"artifacts": "x", "evaluations": [null, {"index": 3, "candidate": {"metrics": "x", "error": 5, "digest": 7}}, {"index": "2"}]}
	rules(findings(m, ev)) == {"EVIDENCE-UNREADABLE"}
	paths(findings(m, ev), "EVIDENCE-UNREADABLE") == {"spec.evaluations[2]"}
	# a candidate written as a string: object.get through it must not raise
	odd := patch(base_manifest, "/spec/evaluations/0/candidate", "evals/answer-v17.json")
	paths(findings(odd, base_evidence), "EVIDENCE-DIGEST") == {"spec.evaluations[0].candidate.digest"}
	bad_records := cand_metric(base_evidence, "pass_rate", {"value": "0.99"})
	paths(findings(base_manifest, bad_records), "EVAL-MISSING") == {"spec.evaluations[0].thresholds.pass_rate"}
}

# --- org bounds: evals.max_significance_z, evals.min_samples_floor ------------------------------

# A huge significance_z would excuse any regression as noise: it is capped (default 3).
test_significance_z_capped if {
	m := threshold("pass_rate", {"min": 0.9, "max_regression": 0.01, "significance_z": 1000})
	# 3 * sqrt(0.005^2 + 0.005^2) = 0.0212 < 0.034: a real regression at the cap
	ev := pass_rates(rec("pass_rate", 0.912, 0.005, 200, true), rec("pass_rate", 0.946, 0.005, 200, true))
	f := one(findings(m, ev), "EVAL-REGRESSION")
	contains(f.msg, "beyond significance_z 3 (the manifest's 1000, capped at evals.max_significance_z) x combined stderr 0.007071 = 0.02121")
	# below the cap the manifest's z is used as written
	m2 := threshold("pass_rate", {"min": 0.9, "max_regression": 0.01, "significance_z": 2})
	f2 := one(findings(m2, ev), "EVAL-REGRESSION")
	not contains(f2.msg, "capped")
}

test_significance_z_cap_from_config if {
	m := threshold("pass_rate", {"min": 0.9, "max_regression": 0.01, "significance_z": 1.96})
	ev := pass_rates(rec("pass_rate", 0.912, 0.005, 200, true), rec("pass_rate", 0.946, 0.005, 200, true))
	# a cap of 1 still finds it; with the manifest's z of 1.96 within noise at a larger stderr
	cfg := object.union(data.relgate.config, {"evals": {"max_significance_z": 1}})
	fs := deny with input as {"manifest": m, "evidence": ev} with data.relgate.config as cfg
	f := one(fs, "EVAL-REGRESSION")
	contains(f.msg, "significance_z 1 (the manifest's 1.96, capped")
	noisy := pass_rates(rec("pass_rate", 0.912, 0.02, 200, true), rec("pass_rate", 0.946, 0.02, 200, true))
	count(findings(m, noisy)) == 0
	fs2 := deny with input as {"manifest": m, "evidence": noisy} with data.relgate.config as cfg
	one(fs2, "EVAL-REGRESSION")
	bad := object.union(data.relgate.config, {"evals": {"max_significance_z": "none"}})
	big := threshold("pass_rate", {"min": 0.9, "max_regression": 0.01, "significance_z": 1000})
	fs3 := deny with input as {"manifest": big, "evidence": ev} with data.relgate.config as bad
	one(fs3, "EVAL-REGRESSION")
}

test_min_samples_floor_from_config if {
	cfg := object.union(data.relgate.config, {"evals": {"min_samples_floor": 500}})
	# the manifest's min_samples 100 is raised to 500
	fs := deny with input as {"manifest": base_manifest, "evidence": base_evidence} with data.relgate.config as cfg
	some f in of_rule(fs, "EVAL-SAMPLES")
	contains(f.msg, "fewer than min_samples 500")
	# and an evaluation without min_samples gets the floor too
	m := remove(base_manifest, "/spec/evaluations/0/min_samples")
	count(findings(m, base_evidence)) == 0
	fs2 := deny with input as {"manifest": m, "evidence": base_evidence} with data.relgate.config as cfg
	count(of_rule(fs2, "EVAL-SAMPLES")) == 2
	# a floor below the manifest's bound changes nothing
	low := object.union(data.relgate.config, {"evals": {"min_samples_floor": 10}})
	count(deny) == 0 with input as {"manifest": base_manifest, "evidence": base_evidence} with data.relgate.config as low
}

# --- EVAL-MODEL-MISMATCH ---------------------------------------------------------------------

with_binding(m) := patch(m, "/spec/prompt/model_binding", {"provider": "openai", "model": "gpt-4o-2024-08-06", "fallback": {"provider": "anthropic", "model": "claude-3-5-sonnet-20241022"}})

evaluated(models) := patch(base_evidence, "/evaluations/0/candidate/models", models)

test_model_mismatch_names_the_evaluated_model if {
	# promptfoo's provider id of a shared fixture (french-greeting-output.json).
	f := one(findings(with_binding(base_manifest), evaluated(["openai:gpt-4o-mini"])), "EVAL-MODEL-MISMATCH")
	f.path == "spec.evaluations[0].candidate.path"
	contains(f.msg, "come from openai:gpt-4o-mini, but the release binds the prompt to anthropic/claude-3-5-sonnet-20241022 or openai/gpt-4o-2024-08-06")
}

test_model_match_in_every_spelling if {
	some models in [
		["openai:gpt-4o-2024-08-06"],
		["openai:chat:gpt-4o-2024-08-06"],
		["OpenAI/GPT-4o-2024-08-06"],
		["gpt-4o-2024-08-06"],
		["anthropic:messages:claude-3-5-sonnet-20241022", "openai:gpt-4o-2024-08-06"],
	]
	count(of_rule(findings(with_binding(base_manifest), evaluated(models)), "EVAL-MODEL-MISMATCH")) == 0
}

test_model_results_that_mix_another_model_are_a_mismatch if {
	# The metrics average every result in the file, so a second model's results count too.
	f := one(findings(with_binding(base_manifest), evaluated(["openai:gpt-4o-2024-08-06", "openai:gpt-5"])), "EVAL-MODEL-MISMATCH")
	contains(f.msg, "come from openai:gpt-5,")
}

test_model_alias_and_other_provider_are_other_models if {
	some models in [["openai:gpt-4o"], ["azureopenai:chat:gpt-4o-2024-08-06"], ["ollama/gpt-4o-2024-08-06-ft"]]
	count(of_rule(findings(with_binding(base_manifest), evaluated(models)), "EVAL-MODEL-MISMATCH")) == 1
}

test_model_results_naming_no_model_cannot_pass if {
	# One result without a provider must not switch the check off for the others.
	ev := patch(evaluated(["openai:gpt-4o-2024-08-06"]), "/evaluations/0/candidate/models_complete", false)
	f := one(findings(with_binding(base_manifest), ev), "EVAL-MODEL-MISMATCH")
	contains(f.msg, "name no model")
	complete := patch(evaluated(["openai:gpt-4o-2024-08-06"]), "/evaluations/0/candidate/models_complete", true)
	count(of_rule(findings(with_binding(base_manifest), complete), "EVAL-MODEL-MISMATCH")) == 0
}

test_model_not_checked_without_binding_or_models if {
	count(of_rule(findings(base_manifest, evaluated(["openai:gpt-5"])), "EVAL-MODEL-MISMATCH")) == 0
	count(of_rule(findings(with_binding(base_manifest), base_evidence), "EVAL-MODEL-MISMATCH")) == 0
	model := json.patch(with_binding(base_manifest), [{"op": "replace", "path": "/kind", "value": "ModelRelease"}])
	count(of_rule(findings(model, evaluated(["openai:gpt-5"])), "EVAL-MODEL-MISMATCH")) == 0
}
