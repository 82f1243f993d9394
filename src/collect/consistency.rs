//! RFC 6962 consistency proofs from a compact tree: the [`Frontier`] of the old tree (one root
//! per perfect subtree, as kept in the collect state file) plus the leaf hashes added since.
//! [`crate::record::merkle::consistency_proof`] needs every leaf; an incremental collection
//! has read only the new records, and the old leaves are needed only through the perfect
//! subtrees the frontier already holds. Every node of the new tree that lies inside the old
//! tree is an aligned perfect subtree, hence a frontier node or a union of consecutive ones
//! (nodes of an RFC 6962 tree form a laminar family and the frontier's subtrees are the
//! maximal aligned ones), so the proof can be computed without the old leaves.

use crate::record::merkle::{self, Frontier, Hash, MerkleError};

/// The old tree's frontier nodes with the leaf range each covers, and the new leaves.
struct Compact<'a> {
    old_size: u64,
    /// (first leaf, leaf count, subtree root), largest (leftmost) first.
    nodes: Vec<(u64, u64, Hash)>,
    new_leaves: &'a [Hash],
}

impl Compact<'_> {
    /// Merkle Tree Hash of leaves `[a, b)`.
    fn mth(&self, a: u64, b: u64) -> Result<Hash, MerkleError> {
        if let Some((_, _, h)) = self
            .nodes
            .iter()
            .find(|(start, len, _)| *start == a && start + len == b)
        {
            return Ok(*h);
        }
        if b - a == 1 {
            if a < self.old_size {
                // Unreachable for ranges taken from an RFC 6962 tree (module docs); an error,
                // not a panic, if that reasoning were ever wrong.
                return Err(MerkleError::Inconsistent(format!(
                    "leaf {a} of the old tree is not covered by its frontier"
                )));
            }
            return usize::try_from(a - self.old_size)
                .ok()
                .and_then(|i| self.new_leaves.get(i))
                .copied()
                .ok_or_else(|| MerkleError::Inconsistent(format!("no leaf {a}")));
        }
        let k = split_point(b - a);
        Ok(merkle::node_hash(
            &self.mth(a, a + k)?,
            &self.mth(a + k, b)?,
        ))
    }

    /// SUBPROOF(m, D[a:b], complete) of RFC 6962 §2.1.2.
    fn subproof(
        &self,
        m: u64,
        a: u64,
        b: u64,
        complete: bool,
        out: &mut Vec<Hash>,
    ) -> Result<(), MerkleError> {
        let n = b - a;
        if m == n {
            if !complete {
                out.push(self.mth(a, b)?);
            }
            return Ok(());
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, a, a + k, complete, out)?;
            out.push(self.mth(a + k, b)?);
        } else {
            self.subproof(m - k, a + k, b, false, out)?;
            out.push(self.mth(a, a + k)?);
        }
        Ok(())
    }
}

/// The largest power of two smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The RFC 6962 consistency proof from the tree `old` describes to that tree extended by
/// `new_leaves` (leaf hashes), computed from the frontier alone. Empty when `old` is empty or
/// nothing was added, as [`merkle::consistency_proof`] gives.
pub(crate) fn proof_from_frontier(
    old: &Frontier,
    new_leaves: &[Hash],
) -> Result<Vec<Hash>, MerkleError> {
    let old_size = old.size();
    let mut out = Vec::new();
    if old_size == 0 || new_leaves.is_empty() {
        return Ok(out);
    }
    let state = old.to_state();
    let mut nodes = Vec::with_capacity(state.nodes.len());
    let mut start = 0u64;
    // One node per set bit of the size, largest first (`Frontier::from_state` checked the shape).
    for (bit, hex) in (0..64u32)
        .rev()
        .filter(|b| old_size & (1u64 << b) != 0)
        .zip(&state.nodes)
    {
        let len = 1u64 << bit;
        nodes.push((start, len, merkle::parse_hash(hex)?));
        start += len;
    }
    let compact = Compact {
        old_size,
        nodes,
        new_leaves,
    };
    let new_size = old_size + new_leaves.len() as u64;
    compact.subproof(old_size, 0, new_size, true, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proof from the frontier equals the proof from all leaves for every pair of sizes up
    /// to 70, and verifies between the two roots.
    #[test]
    fn equals_the_full_proof_for_every_size_pair() {
        let leaves: Vec<Hash> = (0..70u32)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        for n in 1..=leaves.len() {
            for m in 1..=n {
                let mut old = Frontier::new();
                for l in &leaves[..m] {
                    old.append_leaf_hash(*l);
                }
                let ours = proof_from_frontier(&old, &leaves[m..n]).expect("proof");
                let full = merkle::consistency_proof(m as u64, &leaves[..n]).expect("full proof");
                assert_eq!(ours, full, "m={m} n={n}");
                let new_root = merkle::root_from_leaf_hashes(&leaves[..n]);
                merkle::verify_consistency(m as u64, n as u64, &old.root(), &new_root, &ours)
                    .expect("verifies");
            }
        }
    }

    /// A changed old leaf gives a frontier whose proof does not verify against the honest
    /// old root.
    #[test]
    fn a_rewritten_prefix_does_not_verify() {
        let leaves: Vec<Hash> = (0..13u32)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut honest = Frontier::new();
        let mut forged = Frontier::new();
        for (i, l) in leaves[..9].iter().enumerate() {
            honest.append_leaf_hash(*l);
            forged.append_leaf_hash(if i == 4 { merkle::leaf_hash(b"x") } else { *l });
        }
        let proof = proof_from_frontier(&forged, &leaves[9..]).expect("proof");
        let mut all = forged.clone();
        for l in &leaves[9..] {
            all.append_leaf_hash(*l);
        }
        assert!(merkle::verify_consistency(9, 13, &honest.root(), &all.root(), &proof).is_err());
    }
}
