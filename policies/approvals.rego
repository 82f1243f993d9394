# relgate.approvals: who approved the pull request that carries a release
# (docs/approvals.md).
#
# Rules: APPROVAL-MISSING, APPROVAL-SELF, APPROVAL-TEAM.
#
# Input: input.context.pull_request, filled by the GitHub integration or `--pr-json`:
#   {number, author, labels, reviews: [{user, state, submitted_at, commit_id, stale, bot}],
#    approvers, teams: {name: {org, members}}, ...}
# `reviews` holds one entry per reviewer: that reviewer's latest decisive review (a later
# CHANGES_REQUESTED or DISMISSED replaces an earlier APPROVED; COMMENTED replaces nothing).
#
# Semantics:
# - No rule fires when input.context.pull_request is null (or not an object): a local check has
#   no pull-request facts, and the report says approvals were not evaluated.
# - The requirements are data.relgate.config.approvals[environment]: {min, two_person,
#   dismiss_stale, teams: {tier: [team, ...]}}. An environment without an entry requires nothing.
#   Inside an entry: `min` defaults to 1, `two_person` to true, `dismiss_stale` to true.
# - An approval is a `reviews` entry whose state is APPROVED (case-insensitive). `approvers` is
#   not read: a login listed there without an APPROVED review counts for nothing, so a review
#   cancelled by CHANGES_REQUESTED or DISMISSED never counts.
# - Logins compare case-insensitively (surrounding blanks ignored); messages show them as given.
# - The author's own approval never counts, for `min` nor for teams. With two_person (default)
#   it is also an APPROVAL-SELF finding.
# - With dismiss_stale (the default), an approval with `stale: true` (given on an older head
#   commit) does not count, for `min` nor for teams: code pushed after the approval is code
#   nobody approved. With dismiss_stale: false it counts. A review whose `commit_id` is not
#   `head_sha` is stale whatever its `stale` says.
# - An approval by a bot account (`bot: true`: github-actions[bot], a GitHub App) never counts,
#   for `min` nor for teams: a workflow allowed to approve pull requests must not approve its
#   own. The messages name such approvals as not counted. `bot` absent means false.
# - An approval counts only from a reviewer whose `association` (GitHub's author_association)
#   is OWNER, MEMBER or COLLABORATOR (anyone can review a public repository) and whose
#   `permission` on the repository is admin, maintain or write (a member or collaborator may
#   have read access alone), as GitHub's required reviews count. Others are named as not
#   counted. `association` or `permission` absent (a hand-written context) is not held
#   against it.
# - APPROVAL-TEAM: for each team in teams[tier] (the manifest's tier as a string), at least one
#   counted approver must be in pull_request.teams[team].members (team names compare
#   case-insensitively). A team missing from pull_request.teams is APPROVAL-TEAM as well:
#   membership that is unknown cannot satisfy the rule (fail closed).
# - pull_request = {unavailable: reason} (GitHub mode on merge_group, push, workflow_dispatch:
#   no pull request, so nobody's approval can be read): every release whose environment
#   requires approvals (min > 0 or a team for its tier) is APPROVAL-MISSING with that reason;
#   the other approval rules do not fire. Absent facts never pass (fail closed).
# - With two_person (default), an approval whose review has `own_commits_unreviewed: true`
#   does not count: the reviewer authored, committed or pushed a commit of the pull request
#   that no approval by someone else covers (GitHub's "most recent reviewable push"). Absent
#   means false.
# - Labels (e.g. emergency-release) grant nothing here. A team that wants an emergency path
#   writes an `exception` keyed on the label in its own policy; suppressed findings are always
#   reported.
# - Paths: APPROVAL-MISSING and APPROVAL-SELF point at metadata.environment (which decides the
#   rule), APPROVAL-TEAM at metadata.tier (which decides the teams) with `item` = the team.
#
# This package uses no `else`: regorus' RVM mis-evaluates `else :=` after an assignment that is
# undefined, so every default is a second definition with the opposite condition.
package relgate.approvals

# ---------------------------------------------------------------------------------------------
# Inputs. Every rule below depends on `pr` and `rule_cfg`, so nothing fires without them.

pr := p if {
	p := input.context.pull_request
	is_object(p)
}

environment := e if {
	e := input.manifest.metadata.environment
	is_string(e)
}

# The tier as the string key used in the config ("0".."3").
tier_key := format_int(t, 10) if {
	t := input.manifest.metadata.tier
	is_number(t)
}

tier_key := t if {
	t := input.manifest.metadata.tier
	is_string(t)
}

tier_text := tier_key if tier_key

tier_text := "(none)" if not tier_key

# The approval requirements of the manifest's environment.
rule_cfg := r if {
	pr
	approvals := data.relgate.config.approvals
	is_object(approvals)
	r := approvals[environment]
	is_object(r)
}

required_count := n if {
	n := rule_cfg.min
	is_number(n)
}

required_count := 1 if {
	rule_cfg
	not is_number(rule_cfg.min)
}

two_person if {
	rule_cfg
	not rule_cfg.two_person == false
}

dismiss_stale if {
	rule_cfg
	not rule_cfg.dismiss_stale == false
}

required_teams contains team if {
	teams := rule_cfg.teams
	is_object(teams)
	l := teams[tier_key]
	is_array(l)
	some team in l
	is_string(team)
	trim_space(team) != ""
}

# ---------------------------------------------------------------------------------------------
# Pull-request facts.

key(login) := lower(trim_space(login))

author := key(a) if {
	a := pr.author
	is_string(a)
}

author := "" if {
	pr
	not is_string(pr.author)
}

author_shown := trim_space(a) if {
	a := pr.author
	is_string(a)
}

author_shown := "(unknown author)" if {
	pr
	not is_string(pr.author)
}

pr_ref := sprintf("PR #%v", [n]) if {
	n := pr.number
	is_number(n)
}

pr_ref := "the pull request" if {
	pr
	not is_number(pr.number)
}

reviews := rs if {
	l := pr.reviews
	is_array(l)
	rs := [r |
		some r in l
		is_object(r)
		is_string(r.user)
		trim_space(r.user) != ""
	]
}

reviews := [] if {
	pr
	not is_array(pr.reviews)
}

state(r) := upper(s) if {
	s := r.state
	is_string(s)
}

approved(r) if state(r) == "APPROVED"

# An approval that dismiss_stale takes away.
dismissed(r) if {
	dismiss_stale
	stale(r)
}

# Stale: given on an older commit than the head. `stale: true` says so; so does a commit_id
# other than pr.head_sha, whatever `stale` says (a hand-written context cannot call an old
# approval fresh).
stale(r) if r.stale == true

stale(r) if {
	is_string(r.commit_id)
	is_string(pr.head_sha)
	lower(trim_space(r.commit_id)) != lower(trim_space(pr.head_sha))
}

by_author(r) if {
	author != ""
	key(r.user) == author
}

self_approved if {
	some r in reviews
	approved(r)
	by_author(r)
}

by_bot(r) if r.bot == true

# GitHub counts approvals from people with write access only; anyone can review a public
# repository, so an approval from an account with no standing in it would satisfy `min` with
# sock puppets, and an organization member or collaborator may hold read access alone.
# `association` and `permission` absent (a hand-written context) are not held against it.
member_associations := {"OWNER", "MEMBER", "COLLABORATOR"}

write_permissions := {"admin", "maintain", "write"}

no_standing(r) if {
	is_string(r.association)
	not upper(r.association) in member_associations
}

read_only(r) if {
	is_string(r.permission)
	not lower(r.permission) in write_permissions
}

outsider(r) if no_standing(r)

outsider(r) if read_only(r)

# How a not-counted approval is shown: its association, else its permission.
standing(r) := sprintf("%s (%s)", [trim_space(r.user), r.association]) if no_standing(r)

standing(r) := sprintf("%s (permission %s)", [trim_space(r.user), lower(r.permission)]) if {
	not no_standing(r)
	read_only(r)
}

# The reviewer wrote or pushed code nobody else approved (two_person only).
own_code(r) if {
	two_person
	r.own_commits_unreviewed == true
}

# Approvals that count: APPROVED, not by the author, not by a bot, not dismissed as stale.
counted_reviews := [r |
	some r in reviews
	approved(r)
	not by_author(r)
	not by_bot(r)
	not outsider(r)
	not dismissed(r)
	not own_code(r)
]

# Approvals by accounts without standing in the repository.
outsider_shown := {standing(r) |
	some r in reviews
	approved(r)
	not by_author(r)
	not by_bot(r)
	outsider(r)
}

outsider_note := sprintf("not counted: %s (no write access to the repository)", [names(outsider_shown)]) if count(outsider_shown) > 0

outsider_note := "" if count(outsider_shown) == 0

outsider_fix := "approvals must come from people with write access to the repository (admin, maintain or write role)" if count(outsider_shown) > 0

outsider_fix := "" if count(outsider_shown) == 0

# Approvals of reviewers who wrote or pushed commits no one else approved.
own_code_shown := {trim_space(r.user) |
	some r in reviews
	approved(r)
	not by_author(r)
	not by_bot(r)
	own_code(r)
	not key(r.user) in counted
}

own_code_note := sprintf("not counted: %s (authored or pushed commits that no other reviewer approved)", [names(own_code_shown)]) if count(own_code_shown) > 0

own_code_note := "" if count(own_code_shown) == 0

own_code_fix := "a reviewer who authored or pushed commits needs another reviewer to approve after their last commit" if count(own_code_shown) > 0

own_code_fix := "" if count(own_code_shown) == 0

counted := {key(r.user) | some r in counted_reviews}

counted_shown := {trim_space(r.user) | some r in counted_reviews}

# Approvals dismissed as stale (reviewers without another, counted approval).
stale_shown := {trim_space(r.user) |
	some r in reviews
	approved(r)
	not by_author(r)
	not by_bot(r)
	dismissed(r)
	not key(r.user) in counted
}

# Approvals by bots (the author's own is reported as such instead).
bot_shown := {trim_space(r.user) |
	some r in reviews
	approved(r)
	not by_author(r)
	by_bot(r)
	not key(r.user) in counted
}

changes_requested_shown := {trim_space(r.user) |
	some r in reviews
	state(r) == "CHANGES_REQUESTED"
}

teams_obj := t if {
	t := pr.teams
	is_object(t)
}

teams_obj := {} if {
	pr
	not is_object(pr.teams)
}

# The team's membership is in the context (as a list of logins).
team_known(team) if {
	some name, entry in teams_obj
	key(name) == key(team)
	is_object(entry)
	is_array(entry.members)
}

team_members(team) := {key(m) |
	some name, entry in teams_obj
	key(name) == key(team)
	is_object(entry)
	is_array(entry.members)
	some m in entry.members
	is_string(m)
}

# ---------------------------------------------------------------------------------------------
# Message parts.

names(s) := concat(", ", sort(s)) if count(s) > 0

names(s) := "nobody" if count(s) == 0

approvals_word(n) := "approval" if n == 1

approvals_word(n) := "approvals" if n != 1

author_note := sprintf("not counted: %s's own approval (the author)", [author_shown]) if self_approved

author_note := "" if not self_approved

stale_note := sprintf("not counted: %s (approved an older commit, and dismiss_stale is on)", [names(stale_shown)]) if count(stale_shown) > 0

stale_note := "" if count(stale_shown) == 0

bot_note := sprintf("not counted: %s (bot accounts, whose approval never counts)", [names(bot_shown)]) if count(bot_shown) > 0

bot_note := "" if count(bot_shown) == 0

changes_note := sprintf("changes requested by %s", [names(changes_requested_shown)]) if count(changes_requested_shown) > 0

changes_note := "" if count(changes_requested_shown) == 0

non_empty(parts) := [p | some p in parts; p != ""]

# ---------------------------------------------------------------------------------------------
# No pull request in a GitHub-mode run.

unavailable := u if {
	u := pr.unavailable
	is_string(u)
}

requires_approval if required_count > 0

requires_approval if count(required_teams) > 0

deny contains f if {
	reason := unavailable
	requires_approval
	f := {
		"rule": "APPROVAL-MISSING",
		"path": "metadata.environment",
		"msg": sprintf("%s releases need %v %s from reviewers other than the author%s, but %s", [environment, required_count, approvals_word(required_count), teams_clause, reason]),
		"remediation": "decide approvals on the pull request: run relgate on `pull_request` (and `pull_request_review`) and make its check required; a run without a pull request cannot pass a release that needs approvals",
	}
}

teams_clause := sprintf(" and one from each of %s", [concat(", ", sort(required_teams))]) if count(required_teams) > 0

teams_clause := "" if count(required_teams) == 0

# ---------------------------------------------------------------------------------------------
# APPROVAL-MISSING

deny contains f if {
	not unavailable
	need := required_count
	have := count(counted)
	have < need
	base := sprintf("%s releases need %v %s from reviewers other than the author; %s has %d (%s)", [environment, need, approvals_word(need), pr_ref, have, names(counted_shown)])
	fixes := non_empty([
		sprintf("ask %v more reviewer(s) other than the author (%s) to approve %s", [need - have, author_shown, pr_ref]),
		bot_fix,
		outsider_fix,
		own_code_fix,
		stale_fix,
		changes_fix,
	])
	f := {
		"rule": "APPROVAL-MISSING",
		"path": "metadata.environment",
		"msg": concat("; ", non_empty([base, author_note, bot_note, outsider_note, own_code_note, stale_note, changes_note])),
		"remediation": concat("; ", fixes),
	}
}

stale_fix := "a stale approval counts again once the reviewer approves the latest commit" if count(stale_shown) > 0

stale_fix := "" if count(stale_shown) == 0

bot_fix := "approvals must come from people: a bot's approval does not count" if count(bot_shown) > 0

bot_fix := "" if count(bot_shown) == 0

changes_fix := sprintf("address the changes %s requested and ask for a new review", [names(changes_requested_shown)]) if count(changes_requested_shown) > 0

changes_fix := "" if count(changes_requested_shown) == 0

# ---------------------------------------------------------------------------------------------
# APPROVAL-SELF

deny contains f if {
	not unavailable
	two_person
	self_approved
	f := {
		"rule": "APPROVAL-SELF",
		"path": "metadata.environment",
		"msg": sprintf("%s approved their own pull request (%s); %s releases need two people, and an author's approval never counts (approved by others: %s)", [author_shown, pr_ref, environment, names(counted_shown)]),
		"remediation": sprintf("dismiss %s's own approval on %s; the release needs %v %s from reviewers other than the author", [author_shown, pr_ref, required_count, approvals_word(required_count)]),
	}
}

# ---------------------------------------------------------------------------------------------
# APPROVAL-TEAM

deny contains f if {
	not unavailable
	some team in required_teams
	team_known(team)
	members := team_members(team)
	count({l | some l in counted; l in members}) == 0
	base := sprintf("%s tier %s releases need an approval from a member of %s; %s has none (counted approvals: %s)", [environment, tier_text, team, pr_ref, names(counted_shown)])
	f := {
		"rule": "APPROVAL-TEAM",
		"item": team,
		"path": "metadata.tier",
		"msg": concat("; ", non_empty([base, team_author_note(members), bot_note, outsider_note, team_stale_note(members)])),
		"remediation": sprintf("ask a member of %s to review and approve %s", [team, pr_ref]),
	}
}

deny contains f if {
	not unavailable
	some team in required_teams
	not team_known(team)
	f := {
		"rule": "APPROVAL-TEAM",
		"item": team,
		"path": "metadata.tier",
		"msg": sprintf("%s tier %s releases need an approval from a member of %s, but the pull-request context does not say who belongs to %s", [environment, tier_text, team, team]),
		"remediation": sprintf("run the gate with a token that can read team membership (read:org, or the GitHub App permission Members: read) so pull_request.teams lists %s, or add it to the --pr-json file; see docs/approvals.md", [team]),
	}
}

team_author_note(members) := sprintf("%s is a member but is the author, whose approval never counts", [author_shown]) if {
	author_member_approved(members)
}

team_author_note(members) := "" if {
	not author_member_approved(members)
}

author_member_approved(members) if {
	self_approved
	author in members
}

team_stale_note(members) := sprintf("not counted: %s (members whose approval is of an older commit, and dismiss_stale is on)", [names(s)]) if {
	s := stale_members(members)
	count(s) > 0
}

team_stale_note(members) := "" if {
	count(stale_members(members)) == 0
}

stale_members(members) := {trim_space(r.user) |
	some r in reviews
	approved(r)
	not by_author(r)
	not by_bot(r)
	dismissed(r)
	key(r.user) in members
}
