//! RFC 6962 Merkle tree over the ledger's record payloads: leaf and node hashing
//! (`SHA-256(0x00||leaf)`, `SHA-256(0x01||left||right)`), the compact [`Frontier`] the ledger
//! stores so an append costs O(log n), the tree head of a list of leaves, and RFC 6962
//! consistency proofs (generation from leaf hashes, verification against two tree heads) that
//! let an auditor holding an old checkpoint prove the ledger only grew since.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub(crate) type Hash = [u8; 32];

/// Hash of a leaf: `SHA-256(0x00 || data)`.
pub(crate) fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// Hash of an interior node: `SHA-256(0x01 || left || right)`.
pub(crate) fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree: `SHA-256("")`.
pub(crate) fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Largest power of two strictly smaller than `n` (n >= 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Merkle Tree Hash (RFC 6962 §2.1) of a list of leaf hashes, computed recursively.
pub(crate) fn root_from_leaf_hashes(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(
                &root_from_leaf_hashes(&leaves[..k]),
                &root_from_leaf_hashes(&leaves[k..]),
            )
        }
    }
}

/// The compact state of an append-only Merkle tree: the roots of the perfect subtrees that
/// make up a tree of `size` leaves, one per set bit of `size`, largest (leftmost) first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

/// Serialized form of a [`Frontier`] (hex hashes), as stored in the ledger state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontierState {
    /// Number of leaves.
    pub size: u64,
    /// Perfect-subtree roots, largest first, lowercase hex.
    pub nodes: Vec<String>,
}

/// Why a stored frontier or a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The stored frontier does not have one node per set bit of its size.
    #[error("frontier of size {size} must have {want} nodes, has {got}")]
    FrontierShape {
        /// Declared size.
        size: u64,
        /// Nodes expected.
        want: usize,
        /// Nodes present.
        got: usize,
    },
    /// A hash is not 64 hex digits.
    #[error("bad hash {0:?}")]
    BadHash(String),
    /// The sizes cannot be consistent (old larger than new).
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeOrder {
        /// Old size.
        old: u64,
        /// New size.
        new: u64,
    },
    /// The proof does not show the old tree is a prefix of the new one.
    #[error("consistency proof does not verify: {0}")]
    Inconsistent(String),
}

/// Parses 64 lowercase or uppercase hex digits into a hash.
pub(crate) fn parse_hash(s: &str) -> Result<Hash, MerkleError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| MerkleError::BadHash(s.to_owned()))?;
    Ok(out)
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf given its data.
    pub fn append(&mut self, data: &[u8]) {
        self.append_leaf_hash(leaf_hash(data));
    }

    /// Appends a leaf given its leaf hash. O(log n): merges the perfect subtrees the new leaf
    /// completes, like a binary counter's carry.
    pub(crate) fn append_leaf_hash(&mut self, leaf: Hash) {
        let mut carry = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            // A set low bit means a perfect subtree of that size is the last node.
            let Some(left) = self.nodes.pop() else {
                break;
            };
            carry = node_hash(&left, &carry);
            size >>= 1;
        }
        self.nodes.push(carry);
        self.size += 1;
    }

    /// Root hash of the tree: the perfect subtrees folded right to left.
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        let mut acc = *last;
        for left in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }

    /// Serializable form.
    pub(crate) fn to_state(&self) -> FrontierState {
        FrontierState {
            size: self.size,
            nodes: self.nodes.iter().map(hex::encode).collect(),
        }
    }

    /// Restores a frontier, checking its shape.
    pub(crate) fn from_state(state: &FrontierState) -> Result<Frontier, MerkleError> {
        let want = state.size.count_ones() as usize;
        if state.nodes.len() != want {
            return Err(MerkleError::FrontierShape {
                size: state.size,
                want,
                got: state.nodes.len(),
            });
        }
        let nodes = state
            .nodes
            .iter()
            .map(|s| parse_hash(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Frontier {
            size: state.size,
            nodes,
        })
    }
}

/// RFC 6962 §2.1.2 consistency proof that the first `old_size` leaves of `leaves` form a
/// prefix of the tree of all `leaves`. Empty when `old_size` is 0 or equals `leaves.len()`.
pub(crate) fn consistency_proof(old_size: u64, leaves: &[Hash]) -> Result<Vec<Hash>, MerkleError> {
    let n = leaves.len() as u64;
    if old_size > n {
        return Err(MerkleError::SizeOrder {
            old: old_size,
            new: n,
        });
    }
    let mut proof = Vec::new();
    if old_size == 0 || old_size == n {
        return Ok(proof);
    }
    subproof(old_size as usize, leaves, true, &mut proof);
    Ok(proof)
}

/// SUBPROOF(m, D[n], b) of RFC 6962 §2.1.2, appending to `out`.
fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root_from_leaf_hashes(leaves));
        }
        return;
    }
    let k = split_point(n as u64) as usize;
    if m <= k {
        subproof(m, &leaves[..k], complete, out);
        out.push(root_from_leaf_hashes(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root_from_leaf_hashes(&leaves[..k]));
    }
}

/// Verifies an RFC 6962 consistency proof between tree heads (`old_size`, `old_root`) and
/// (`new_size`, `new_root`), following RFC 9162 §2.1.4.2.
pub(crate) fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::SizeOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(MerkleError::Inconsistent(
                "equal sizes need an empty proof".into(),
            ));
        }
        if old_root != new_root {
            return Err(MerkleError::Inconsistent(
                "equal sizes but different roots".into(),
            ));
        }
        return Ok(());
    }
    if old_size == 0 {
        // The empty tree is a prefix of every tree.
        if !proof.is_empty() {
            return Err(MerkleError::Inconsistent(
                "proof from the empty tree must be empty".into(),
            ));
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(MerkleError::Inconsistent("empty proof".into()));
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let mut fn_ = old_size - 1;
    let mut sn = new_size - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if sn == 0 {
            return Err(MerkleError::Inconsistent("proof too long".into()));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(MerkleError::Inconsistent("proof too short".into()));
    }
    if &fr != old_root {
        return Err(MerkleError::Inconsistent(
            "proof does not lead to the old root".into(),
        ));
    }
    if &sr != new_root {
        return Err(MerkleError::Inconsistent(
            "proof does not lead to the new root".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hash {
        parse_hash(s).expect("test vector hash is hex")
    }

    /// Leaf inputs of the RFC 6962 test tree used by Certificate Transparency and
    /// transparency-dev/merkle (testonly.LeafInputs).
    fn leaf_inputs() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|s| hex::decode(s).expect("test vector is hex"))
        .collect()
    }

    /// Root hashes for tree sizes 0..=8 (testonly.RootHashes).
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// Known-good consistency proofs (transparency-dev/merkle proof/verify_test.go).
    fn known_consistency() -> Vec<(u64, u64, Vec<Hash>)> {
        vec![
            (1, 1, vec![]),
            (
                1,
                8,
                vec![
                    h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
                ],
            ),
            (
                6,
                8,
                vec![
                    h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
            (
                2,
                5,
                vec![
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                ],
            ),
            (
                6,
                7,
                vec![
                    h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                    h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
        ]
    }

    fn vector_leaves() -> Vec<Hash> {
        leaf_inputs().iter().map(|d| leaf_hash(d)).collect()
    }

    #[test]
    fn roots_match_rfc6962_vectors() {
        let leaves = vector_leaves();
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), h(ROOTS[0]));
        for n in 1..=8 {
            frontier.append_leaf_hash(leaves[n - 1]);
            assert_eq!(
                root_from_leaf_hashes(&leaves[..n]),
                h(ROOTS[n]),
                "MTH size {n}"
            );
            assert_eq!(frontier.root(), h(ROOTS[n]), "frontier size {n}");
            let restored = Frontier::from_state(&frontier.to_state());
            assert_eq!(restored.as_ref(), Ok(&frontier));
        }
    }

    #[test]
    fn consistency_matches_known_proofs() {
        let leaves = vector_leaves();
        for (m, n, want) in known_consistency() {
            let got = consistency_proof(m, &leaves[..n as usize]);
            assert_eq!(got.as_ref(), Ok(&want), "proof {m}->{n}");
            assert_eq!(
                verify_consistency(m, n, &h(ROOTS[m as usize]), &h(ROOTS[n as usize]), &want),
                Ok(()),
                "verify {m}->{n}"
            );
        }
    }

    #[test]
    fn corrupted_consistency_proofs_fail() {
        // The corruption probes of transparency-dev/merkle's verifier tests.
        for (m, n, proof) in known_consistency() {
            if proof.is_empty() {
                continue;
            }
            let r1 = h(ROOTS[m as usize]);
            let r2 = h(ROOTS[n as usize]);
            let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
            let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
                (m - 1, n, r1, r2, proof.clone()),
                (m + 1, n, r1, r2, proof.clone()),
                (m ^ 2, n, r1, r2, proof.clone()),
                (m, n * 2, r1, r2, proof.clone()),
                (m, n / 2, r1, r2, proof.clone()),
                (m, n, some, r2, proof.clone()),
                (m, n, r1, some, proof.clone()),
                (m, n, r2, r1, proof.clone()),
                (m, n, r1, r2, vec![]),
                (m, n, r1, r2, [proof.clone(), vec![r1]].concat()),
                (m, n, r1, r2, [proof.clone(), vec![r2]].concat()),
                (m, n, r1, r2, [vec![r1], proof.clone()].concat()),
                (m, n, r1, r2, [vec![r2], proof.clone()].concat()),
                (m, n, r1, r2, [vec![proof[0]], proof.clone()].concat()),
                (m, n, r1, r2, proof[..proof.len() - 1].to_vec()),
            ];
            for i in 0..proof.len() {
                let mut p = proof.clone();
                p[i][0] ^= 16;
                probes.push((m, n, r1, r2, p));
            }
            for (i, (a, b, ra, rb, p)) in probes.iter().enumerate() {
                assert!(
                    verify_consistency(*a, *b, ra, rb, p).is_err(),
                    "probe {i} of {m}->{n} verified"
                );
            }
        }
    }

    /// A small deterministic PRNG (SplitMix64) so the randomized tests are reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Naive MTH straight from the RFC's recursive definition, on leaf data.
    fn naive_root(data: &[Vec<u8>]) -> Hash {
        match data.len() {
            0 => Sha256::digest([]).into(),
            1 => {
                let mut v = vec![0u8];
                v.extend_from_slice(&data[0]);
                Sha256::digest(&v).into()
            }
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                let mut v = vec![1u8];
                v.extend_from_slice(&naive_root(&data[..k]));
                v.extend_from_slice(&naive_root(&data[k..]));
                Sha256::digest(&v).into()
            }
        }
    }

    #[test]
    fn randomized_frontier_and_proofs_agree_with_naive_tree() {
        let mut rng = Rng(0x5eed);
        for _round in 0..40 {
            let n = 1 + rng.below(300) as usize;
            let data: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let len = rng.below(40) as usize;
                    (0..len).map(|_| rng.next() as u8).collect()
                })
                .collect();
            let leaves: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
            let mut frontier = Frontier::new();
            let mut roots = vec![empty_root()];
            for (i, d) in data.iter().enumerate() {
                frontier.append(d);
                let root = frontier.root();
                if i % 17 == 0 || i + 1 == n {
                    assert_eq!(root, naive_root(&data[..=i]), "size {}", i + 1);
                }
                roots.push(root);
            }
            for _ in 0..20 {
                let new = 1 + rng.below(n as u64);
                let old = rng.below(new + 1);
                let proof = consistency_proof(old, &leaves[..new as usize]).expect("old <= new");
                assert_eq!(
                    verify_consistency(
                        old,
                        new,
                        &roots[old as usize],
                        &roots[new as usize],
                        &proof
                    ),
                    Ok(()),
                    "{old}->{new}"
                );
                if old > 0 && old < new {
                    // A different old tree (one leaf changed) must not verify.
                    let mut forged = leaves[..old as usize].to_vec();
                    let idx = rng.below(old) as usize;
                    forged[idx][0] ^= 1;
                    let forged_root = root_from_leaf_hashes(&forged);
                    assert!(verify_consistency(
                        old,
                        new,
                        &forged_root,
                        &roots[new as usize],
                        &proof
                    )
                    .is_err());
                }
            }
        }
    }

    #[test]
    fn frontier_state_rejects_wrong_shape() {
        let state = FrontierState {
            size: 3,
            nodes: vec![hex::encode([0u8; 32])],
        };
        assert!(matches!(
            Frontier::from_state(&state),
            Err(MerkleError::FrontierShape { .. })
        ));
    }
}
