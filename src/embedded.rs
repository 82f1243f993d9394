//! Files compiled into the binary by `build.rs`: the built-in policy bundle and the JSON
//! Schemas. Each table is `(path in the source tree, contents)`, sorted by path.

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// Contents of an embedded file by its source-tree path.
pub(crate) fn file(table: &[(&'static str, &'static str)], path: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, contents)| *contents)
}
