# KESTREL-TICKET: every production release names its change ticket in one of the Jira projects
# the platform team's change process covers (data.kestrel.jira_projects, jira-projects.yaml in
# this bundle), so each release can be traced to an approved change.
package main

import rego.v1

deny contains finding if {
	input.manifest.metadata.environment == "production"
	ticket := object.get(input.manifest.metadata, "ticket", "")
	project := split(ticket, "-")[0]
	not project in data.kestrel.jira_projects
	finding := {
		"rule": "KESTREL-TICKET",
		"msg": sprintf("ticket %q is not in a Jira project of the platform change process (%s)", [ticket, concat(", ", data.kestrel.jira_projects)]),
		"path": "metadata.ticket",
		"remediation": "file the change in one of those Jira projects, or ask the platform team to add yours to jira-projects.yaml",
	}
}
