# relgate.release: artifact integrity, rollout and rollback plans.
#
# Rules: ARTIFACT-DIGEST, ROLLOUT-PLAN, ROLLBACK-PLAN.
#
# Semantics:
# - ARTIFACT-DIGEST checks the released file when it lives in the repository, whatever the
#   manifest's `registry` says (a PR author controls that field): relgate records an
#   input.evidence.artifacts entry with role "prompt" (PromptRelease: spec.prompt.path and a
#   spec.prompt.uri that is a relative path, each that names something in the repository) or
#   "model" (ModelRelease, spec.model.uri written as a relative path) for every such name, a
#   directory being an entry with an error, and for registry "git" always. Only entries of the
#   manifest's own role count. It fails closed and denies when:
#   registry is "git" and there is no prompt entry (path spec.prompt.path);
#   an entry's digest is null (missing, unreadable or outside the gate root; the message carries
#   the entry's `error`; path spec.prompt.path / spec.model.uri);
#   spec.<role>.digest is missing (path spec.<role>.digest; the message gives the file's digest);
#   an entry's digest differs from spec.<role>.digest (compared case-insensitively; path
#   spec.<role>.digest).
# - ROLLOUT-PLAN applies when the manifest's tier (as a string) is listed in
#   config rollout.progressive_required[environment] (default production: ["0", "1"]); for a
#   change_type in rollout.exempt_change_types (default [rollback]: an incident rollback should
#   not be canaried) its findings are warnings that say the release is exempt (the change type
#   is the manifest's own word, so the approvers see what it waived). Strategies:
#     canary, percentage  progressive only with steps: a non-empty list of numbers in (0, 100],
#                         strictly ascending, the last one 100 (one finding per bad step), at
#                         least config rollout.min_steps of them (default 2) and the first at
#                         most rollout.max_first_step (default 25): org floors the manifest
#                         cannot undercut (a non-number in the config means the default);
#     blue_green, shadow  count as progressive without steps (traffic is switched or mirrored
#                         as a whole after verification; steps are not checked);
#     all_at_once, a missing or an unknown strategy  deny.
# - ROLLBACK-PLAN applies in config rollback.environments (default staging and production); for
#   change types in rollback.exempt_change_types (default [rollback]: a rollback release is
#   itself the way back; rolling it back means re-releasing the bad version) its findings are
#   warnings that say the release is exempt. It denies a
#   missing or empty spec.rollback.to_version, a to_version equal to metadata.version, and, when
#   config rollback.max_minutes has a limit for the tier, a missing or non-numeric
#   spec.rollback.max_minutes or one above the limit.
package relgate.release

import data.relgate.lib
import data.relgate.lib.cfg
import data.relgate.lib.manifest
import data.relgate.lib.kind
import data.relgate.lib.environment
import data.relgate.lib.change_type
import data.relgate.lib.tier_key

# ---------------------------------------------------------------------------------------------
# Inputs: cfg, manifest and the metadata fields come from relgate.lib (safe defaults).

spec_obj(key) := v if {
	v := object.get(manifest, ["spec", key], {})
	is_object(v)
} else := {}

prompt := spec_obj("prompt")

rollout := spec_obj("rollout")

rollback := spec_obj("rollback")

# A scalar as text for messages and comparisons (YAML may give versions as numbers).
text(x) := x if {
	is_string(x)
} else := format_int(x, 10) if {
	is_number(x)
	x == floor(x)
} else := sprintf("%v", [x])

# ---------------------------------------------------------------------------------------------
# ARTIFACT-DIGEST

git_prompt if {
	kind == "PromptRelease"
	prompt.registry == "git"
}

artifacts := a if {
	a := input.evidence.artifacts
	is_array(a)
} else := []

# The manifest section an artifact role belongs to (spec.prompt, spec.model).
artifact_roles := {"prompt", "model"}

# Artifacts relgate recorded for this manifest's own kind: a repository file named by
# spec.prompt.path or .uri, or spec.model.uri, whatever the registry says.
released_artifacts := [a |
	some a in artifacts
	is_object(a)
	a.role in artifact_roles
	a.role == own_role
]

own_role := "prompt" if kind == "PromptRelease"

own_role := "model" if kind == "ModelRelease"

prompt_artifacts := [a | some a in released_artifacts; a.role == "prompt"]

prompt_file := p if {
	p := prompt.path
	is_string(p)
} else := "(no spec.prompt.path)"

# The file an artifact is, for messages.
artifact_file(a) := sprintf("%s file %s", [a.role, a.path]) if {
	lib.non_empty_string(a.path)
} else := sprintf("%s file %s", [a.role, prompt_file])

# The field an artifact's file is named by (a prompt may name one by `path` and another by
# `uri`: each is checked), and the digest field it must match.
location_field(a) := "spec.prompt.path" if {
	a.role == "prompt"
	not prompt_named_by_uri(a)
} else := "spec.prompt.uri" if {
	a.role == "prompt"
} else := "spec.model.uri"

prompt_named_by_uri(a) if {
	is_string(prompt.uri)
	not prompt.path == a.path
}

digest_field(role) := sprintf("spec.%s.digest", [role])

declared_digest(role) := d if {
	d := object.get(manifest, ["spec", role, "digest"], null)
	lib.non_empty_string(d)
}

artifact_error(a) := e if {
	e := a.error
	lib.non_empty_string(e)
} else := "no error given"

deny contains f if {
	git_prompt
	count(prompt_artifacts) == 0
	f := {
		"rule": "ARTIFACT-DIGEST",
		"path": "spec.prompt.path",
		"msg": sprintf("prompt file %s could not be verified: relgate recorded no artifact for it, so its sha256 cannot be compared with spec.prompt.digest", [prompt_file]),
		"remediation": "make sure spec.prompt.path names a file inside the gate root that is committed with the release",
	}
}

deny contains f if {
	some a in released_artifacts
	not is_string(a.digest)
	f := {
		"rule": "ARTIFACT-DIGEST",
		"path": location_field(a),
		"msg": sprintf("%s could not be read to check its digest: %s", [artifact_file(a), artifact_error(a)]),
		"remediation": sprintf("fix %s so it names a readable file inside the gate root, then set %s to its sha256", [location_field(a), digest_field(a.role)]),
	}
}

deny contains f if {
	some a in released_artifacts
	not declared_digest(a.role)
	is_string(a.digest)
	f := {
		"rule": "ARTIFACT-DIGEST",
		"path": digest_field(a.role),
		"msg": sprintf("%s is missing; %s has digest %s", [digest_field(a.role), artifact_file(a), a.digest]),
		"remediation": sprintf("pin the %s: set %s: %s (after reviewing the file)", [a.role, digest_field(a.role), a.digest]),
	}
}

deny contains f if {
	some a in released_artifacts
	declared := declared_digest(a.role)
	is_string(a.digest)
	lower(trim_space(a.digest)) != lower(trim_space(declared))
	f := {
		"rule": "ARTIFACT-DIGEST",
		"path": digest_field(a.role),
		"msg": sprintf("%s has digest %s but %s is %s", [artifact_file(a), a.digest, digest_field(a.role), declared]),
		"remediation": sprintf("if the %s change is intended, set %s: %s and re-run the evaluations; otherwise restore the reviewed %s file", [a.role, digest_field(a.role), a.digest, a.role]),
	}
}

# ---------------------------------------------------------------------------------------------
# ROLLOUT-PLAN

# The rollout findings of the manifest's tier, whatever its change type; they deny, or for a
# change type in rollout.exempt_change_types warn, saying the release is exempt. The change type
# is the manifest's own word: the warning shows the approvers what the exemption waived.
progressive_by_tier if tier_key in lib.cfg_list(["rollout", "progressive_required", environment])

rollout_exempt if change_type in lib.cfg_list(["rollout", "exempt_change_types"])

deny contains f if {
	not rollout_exempt
	some f in rollout_problems
}

warn contains f if {
	rollout_exempt
	some problem in rollout_problems
	f := exempt_warning(problem, "rollout.exempt_change_types")
}

# A finding waived by the change type, as the warning that says so.
exempt_warning(problem, key) := object.union(problem, {"msg": sprintf("%s (not blocking: change_type %s is exempt (%s); approving this release confirms it is one)", [problem.msg, change_type, key])})

stepped_strategies := {"canary", "percentage"}

stepless_strategies := {"blue_green", "shadow"}

strategy := s if {
	s := rollout.strategy
	is_string(s)
} else := ""

steps := s if {
	s := rollout.steps
	is_array(s)
} else := []

why_progressive := sprintf("%s tier %s releases must roll out progressively (rollout.progressive_required)", [environment, tier_key])

rollout_remediation := "use strategy canary (or percentage) with ascending steps ending at 100, e.g. steps: [5, 25, 50, 100], or blue_green"

rollout_problems contains f if {
	progressive_by_tier
	strategy == ""
	f := {
		"rule": "ROLLOUT-PLAN",
		"path": "spec.rollout.strategy",
		"msg": sprintf("no rollout strategy is given; %s", [why_progressive]),
		"remediation": rollout_remediation,
	}
}

rollout_problems contains f if {
	progressive_by_tier
	strategy != ""
	not strategy in stepped_strategies
	not strategy in stepless_strategies
	reason := strategy_problem(strategy)
	f := {
		"rule": "ROLLOUT-PLAN",
		"path": "spec.rollout.strategy",
		"msg": sprintf("rollout strategy %s: %s; %s", [strategy, reason, why_progressive]),
		"remediation": rollout_remediation,
	}
}

rollout_problems contains f if {
	progressive_by_tier
	strategy in stepped_strategies
	count(steps) == 0
	f := {
		"rule": "ROLLOUT-PLAN",
		"path": "spec.rollout.steps",
		"msg": sprintf("rollout strategy %s has no steps; %s", [strategy, why_progressive]),
		"remediation": "add steps: traffic percentages ascending to 100, e.g. [5, 25, 50, 100]",
	}
}

rollout_problems contains f if {
	progressive_by_tier
	strategy in stepped_strategies
	some i, s in steps
	not valid_step(s)
	f := {
		"rule": "ROLLOUT-PLAN",
		"path": sprintf("spec.rollout.steps[%d]", [i]),
		"msg": sprintf("rollout step %d is %v; steps are traffic percentages greater than 0 and at most 100", [i, s]),
		"remediation": "use percentages in (0, 100], ascending to 100",
	}
}

rollout_problems contains f if {
	progressive_by_tier
	strategy in stepped_strategies
	some i, s in steps
	i > 0
	valid_step(s)
	valid_step(steps[i - 1])
	s <= steps[i - 1]
	f := {
		"rule": "ROLLOUT-PLAN",
		"path": sprintf("spec.rollout.steps[%d]", [i]),
		"msg": sprintf("rollout steps are not strictly ascending: step %d is %v after %v", [i, s, steps[i - 1]]),
		"remediation": "order the steps so each one sends more traffic than the one before, ending at 100",
	}
}

rollout_problems contains f if {
	progressive_by_tier
	strategy in stepped_strategies
	count(steps) > 0
	last := steps[count(steps) - 1]
	last != 100
	f := {
		"rule": "ROLLOUT-PLAN",
		"path": sprintf("spec.rollout.steps[%d]", [count(steps) - 1]),
		"msg": sprintf("the last rollout step is %v; expected 100 (the rollout must end at full traffic)", [last]),
		"remediation": "end the steps with 100",
	}
}

# Org floors of a stepped rollout (config rollout.min_steps, rollout.max_first_step): the
# manifest states its own steps, so `steps: [100]` or `[90, 100]` would otherwise count as
# progressive. A value that is not a number falls back to the built-in default (fail closed).
min_steps := n if {
	n := object.get(cfg, ["rollout", "min_steps"], null)
	is_number(n)
} else := 2

max_first_step := n if {
	n := object.get(cfg, ["rollout", "max_first_step"], null)
	is_number(n)
} else := 25

rollout_problems contains f if {
	progressive_by_tier
	strategy in stepped_strategies
	count(steps) > 0
	count(steps) < min_steps
	f := {
		"rule": "ROLLOUT-PLAN",
		"path": "spec.rollout.steps",
		"msg": sprintf("rollout strategy %s has %s; a progressive rollout has at least %v steps (rollout.min_steps); %s", [strategy, step_count_text(count(steps)), min_steps, why_progressive]),
		"remediation": sprintf("add smaller steps before 100, e.g. steps: [5, 25, 50, 100] (the first at most %v)", [max_first_step]),
	}
}

rollout_problems contains f if {
	progressive_by_tier
	strategy in stepped_strategies
	first := steps[0]
	valid_step(first)
	first > max_first_step
	f := {
		"rule": "ROLLOUT-PLAN",
		"path": "spec.rollout.steps[0]",
		"msg": sprintf("the first rollout step is %v; a progressive rollout sends at most %v%% of traffic to its first step (rollout.max_first_step)", [first, max_first_step]),
		"remediation": sprintf("start with a smaller canary, at most %v, e.g. steps: [5, 25, 50, 100]", [max_first_step]),
	}
}

step_count_text(1) := "1 step"

step_count_text(n) := sprintf("%d steps", [n]) if n != 1

strategy_problem("all_at_once") := "all_at_once sends all traffic at once"

strategy_problem(s) := sprintf("unknown strategy (expected one of: %s)", [concat(", ", sort(stepped_strategies | stepless_strategies))]) if {
	s != "all_at_once"
}

valid_step(s) if {
	is_number(s)
	s > 0
	s <= 100
}

# ---------------------------------------------------------------------------------------------
# ROLLBACK-PLAN

# Like the rollout findings: the environment's, denied or, for an exempt change type, warned.
rollback_by_environment if environment in lib.cfg_list(["rollback", "environments"])

rollback_exempt if change_type in lib.cfg_list(["rollback", "exempt_change_types"])

deny contains f if {
	not rollback_exempt
	some f in rollback_problems
}

warn contains f if {
	rollback_exempt
	some problem in rollback_problems
	f := exempt_warning(problem, "rollback.exempt_change_types")
}

to_version := text(v) if {
	v := rollback.to_version
	v != null
	lib.non_empty_string(text(v))
}

max_minutes_limit := l if {
	l := object.get(cfg, ["rollback", "max_minutes", tier_key], null)
	is_number(l)
}

rollback_problems contains f if {
	rollback_by_environment
	not to_version
	f := {
		"rule": "ROLLBACK-PLAN",
		"path": "spec.rollback.to_version",
		"msg": sprintf("no rollback target: spec.rollback.to_version is missing; %s releases need a version to roll back to", [environment]),
		"remediation": "set spec.rollback.to_version to the currently released (baseline) version",
	}
}

rollback_problems contains f if {
	rollback_by_environment
	to_version == text(object.get(manifest, ["metadata", "version"], null))
	f := {
		"rule": "ROLLBACK-PLAN",
		"path": "spec.rollback.to_version",
		"msg": sprintf("spec.rollback.to_version %s is the version being released; a rollback target must be an earlier version", [to_version]),
		"remediation": "set spec.rollback.to_version to the currently released (baseline) version",
	}
}

rollback_problems contains f if {
	rollback_by_environment
	limit := max_minutes_limit
	not is_number(rollback.max_minutes)
	f := {
		"rule": "ROLLBACK-PLAN",
		"path": "spec.rollback.max_minutes",
		"msg": sprintf("spec.rollback.max_minutes is missing; tier %s rollbacks must complete within %v minutes", [tier_key, limit]),
		"remediation": sprintf("set spec.rollback.max_minutes (at most %v) to the measured rollback time", [limit]),
	}
}

rollback_problems contains f if {
	rollback_by_environment
	limit := max_minutes_limit
	minutes := rollback.max_minutes
	is_number(minutes)
	minutes > limit
	f := {
		"rule": "ROLLBACK-PLAN",
		"path": "spec.rollback.max_minutes",
		"msg": sprintf("spec.rollback.max_minutes is %v; tier %s rollbacks must complete within %v minutes", [minutes, tier_key, limit]),
		"remediation": sprintf("make the rollback faster (e.g. automated: true, pre-warmed previous version) and set max_minutes to at most %v", [limit]),
	}
}
