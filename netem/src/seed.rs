//! Deriving independent random streams from the one seed of a run.

/// SplitMix64's output function (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014; constants from Vigna's splitmix64.c): a bijective mixer, so
/// distinct inputs give distinct, well-scattered outputs.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of the sub-stream `salt` of `seed`.
pub(crate) fn derive_seed(seed: u64, salt: u64) -> u64 {
    splitmix64(seed ^ splitmix64(salt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_are_stable() {
        assert_ne!(derive_seed(1, 1), derive_seed(1, 2));
        assert_ne!(derive_seed(1, 1), derive_seed(2, 1));
        assert_eq!(derive_seed(7, 3), derive_seed(7, 3));
    }
}
