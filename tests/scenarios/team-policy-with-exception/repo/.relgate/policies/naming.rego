package main

# Release names must not say "legacy" (team rule), except the one we are retiring.
deny_legacy_name contains {"msg": sprintf("release %s has a legacy name", [input.manifest.metadata.name]), "rule": "TEAM-NAMING", "path": "metadata.name"} if {
	contains(input.manifest.metadata.name, "legacy")
}

exception contains "legacy_name" if input.manifest.metadata.name == "legacy"
