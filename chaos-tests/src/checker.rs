//! The chaos suite's one checker, in the style of Jepsen's set and queue checkers: it compares
//! what a source *knows* was acknowledged with what the hub holds at the end, and counts every
//! way they can differ instead of stopping at the first.
//!
//! A stream is one source of events with its own order: one slot machine's exceptions as the
//! machine itself recorded the host's acknowledgements, or one edge's sequence numbers. Its
//! history has two parts: the acknowledged ids, in the order they were acknowledged, and the ids
//! whose outcome the source cannot know (sent, then the power went before the acknowledgement
//! came back). At the end, the hub's ids for that stream, in the hub's order, are counted as:
//!
//! - `lost`: acknowledged and not at the hub — the one failure that loses money;
//! - `duplicated`: at the hub more than once;
//! - `unexpected`: at the hub, never sent;
//! - `recovered`: outcome unknown to the source, but at the hub (allowed);
//! - `reordered`: acknowledged ids the hub holds in a different order than they were
//!   acknowledged (counted as the ids not on a longest common in-order run).
//!
//! A stream is valid when `lost`, `duplicated`, `unexpected` and `reordered` are all zero.
//!
//! Ids must be unique within a stream's history. A source whose events are not unique by
//! themselves (a machine raises exception 0x7E many times) is lined up with the hub's stream by
//! [`align`] (a longest common subsequence): each hub event takes the id of the source event it
//! stands for, or a new id (extra). A loss is then one `lost` id, a duplicate one `unexpected`,
//! and a swap one of each.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What a source knows about one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History<Id> {
    /// Acknowledged ids, in the order they were acknowledged.
    pub acknowledged: Vec<Id>,
    /// Ids sent whose acknowledgement the source never saw.
    pub indeterminate: Vec<Id>,
}

impl<Id> History<Id> {
    pub fn acknowledged(ids: Vec<Id>) -> Self {
        Self {
            acknowledged: ids,
            indeterminate: Vec::new(),
        }
    }
}

/// The counts for one stream (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    pub acknowledged: usize,
    /// Ids whose outcome the source could not know.
    pub indeterminate: usize,
    pub observed: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub unexpected: usize,
    pub recovered: usize,
    pub reordered: usize,
}

impl Verdict {
    pub fn valid(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.unexpected == 0 && self.reordered == 0
    }

    /// Adds another stream's counts (for a run's total).
    pub fn add(&mut self, other: &Verdict) {
        self.acknowledged += other.acknowledged;
        self.indeterminate += other.indeterminate;
        self.observed += other.observed;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.unexpected += other.unexpected;
        self.recovered += other.recovered;
        self.reordered += other.reordered;
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} acknowledged and {} indeterminate, {} at the hub: {} lost, {} duplicated, {} unexpected, {} recovered, {} reordered",
            self.acknowledged,
            self.indeterminate,
            self.observed,
            self.lost,
            self.duplicated,
            self.unexpected,
            self.recovered,
            self.reordered
        )
    }
}

/// Checks one stream: `observed` is what the hub holds for it, in the hub's order.
pub fn check<Id: Ord + Clone>(history: &History<Id>, observed: &[Id]) -> Verdict {
    let acknowledged: BTreeSet<&Id> = history.acknowledged.iter().collect();
    let indeterminate: BTreeSet<&Id> = history.indeterminate.iter().collect();
    let mut seen: BTreeMap<&Id, usize> = BTreeMap::new();
    for id in observed {
        *seen.entry(id).or_default() += 1;
    }
    let lost = acknowledged
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .count();
    let duplicated = seen.values().map(|n| n - 1).sum();
    let unexpected = seen
        .keys()
        .filter(|id| !acknowledged.contains(*id) && !indeterminate.contains(*id))
        .count();
    let recovered = seen
        .keys()
        .filter(|id| !acknowledged.contains(*id) && indeterminate.contains(*id))
        .count();

    // Order: the acknowledged ids the hub holds, each at its first place there, must come in
    // acknowledgement order; those off the longest increasing run are the reordered ones.
    let rank: BTreeMap<&Id, usize> = history
        .acknowledged
        .iter()
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    let mut first = BTreeSet::new();
    let ranks: Vec<usize> = observed
        .iter()
        .filter(|id| first.insert(*id))
        .filter_map(|id| rank.get(id).copied())
        .collect();
    let reordered = ranks.len() - longest_increasing(&ranks);

    Verdict {
        acknowledged: history.acknowledged.len(),
        indeterminate: history.indeterminate.len(),
        observed: observed.len(),
        lost,
        duplicated,
        unexpected,
        recovered,
        reordered,
    }
}

/// Length of the longest strictly increasing subsequence (patience sorting, O(n log n)).
fn longest_increasing(values: &[usize]) -> usize {
    let mut tails: Vec<usize> = Vec::new();
    for &v in values {
        match tails.binary_search(&v) {
            Ok(_) => {}
            Err(i) if i == tails.len() => tails.push(v),
            Err(i) => tails[i] = v,
        }
    }
    tails.len()
}

/// Matches a stream whose values repeat (a machine's exception codes) against what the hub holds,
/// by a longest common subsequence: returns, for each observed value, the index of the expected
/// value it stands for, or `None` (then it is extra: doubled or unexpected). Expected values no
/// observed one stands for are missing. One missing value does not shift the ones after it (as
/// numbering repeats by occurrence would). O(n·m): for streams of thousands, not millions.
///
/// Where equal values make several alignments equally long, the one that leaves out the fewest
/// `required` expected values wins: with `70 70` expected, the first indeterminate and the
/// second acknowledged, and one `70` at the hub, the hub's `70` is the acknowledged one.
pub fn align<T: PartialEq>(
    expected: &[T],
    observed: &[T],
    required: impl Fn(usize) -> bool,
) -> Vec<Option<usize>> {
    let (n, m) = (expected.len(), observed.len());
    // Every match is worth 2(n + 1), plus 1 for a required value: a longer alignment always
    // wins (the bonuses add up to at most n), and of equally long ones, the one that keeps the
    // most required values.
    let weight = |i: usize| (n as u64 + 1) * 2 + u64::from(required(i));
    // best[i][j]: the best score aligning expected[i..] with observed[j..].
    let mut best = vec![vec![0u64; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let skip = best[i + 1][j].max(best[i][j + 1]);
            best[i][j] = if expected[i] == observed[j] {
                skip.max(weight(i) + best[i + 1][j + 1])
            } else {
                skip
            };
        }
    }
    let mut matched = vec![None; m];
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if expected[i] == observed[j] && best[i][j] == weight(i) + best[i + 1][j + 1] {
            matched[j] = Some(i);
            i += 1;
            j += 1;
        } else if best[i][j] == best[i + 1][j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_hub_that_holds_exactly_what_was_acknowledged_is_valid() {
        let verdict = check(&History::acknowledged(vec![1, 2, 3]), &[1, 2, 3]);
        assert!(verdict.valid(), "{verdict}");
        assert_eq!(verdict.acknowledged, 3);
    }

    #[test]
    fn each_kind_of_difference_is_counted_on_its_own() {
        let history = History {
            acknowledged: vec![1, 2, 3, 4, 5],
            indeterminate: vec![6, 7],
        };
        let verdict = check(&history, &[1, 3, 2, 3, 5, 6, 9]);
        assert_eq!(
            verdict,
            Verdict {
                acknowledged: 5,
                indeterminate: 2,
                observed: 7,
                lost: 1,
                duplicated: 1,
                unexpected: 1,
                recovered: 1,
                reordered: 1,
            }
        );
        assert!(!verdict.valid());
    }

    #[test]
    fn an_indeterminate_event_may_be_missing_or_present() {
        let history = History {
            acknowledged: vec![1],
            indeterminate: vec![2, 3],
        };
        assert!(check(&history, &[1, 3]).valid());
        assert!(check(&history, &[1]).valid());
    }

    #[test]
    fn a_missing_repeated_code_does_not_shift_the_ones_after_it() {
        let machine = [0x7E, 0x7F, 0x7E, 0x7F, 0x7E];
        let hub = [0x7E, 0x7F, 0x7F, 0x7E];
        assert_eq!(
            align(&machine, &hub, |_| true),
            vec![Some(0), Some(1), Some(3), Some(4)]
        );
        let doubled = [0x7E, 0x7F, 0x7F, 0x7E, 0x7F, 0x7E];
        let matched = align(&machine, &doubled, |_| true);
        assert_eq!(matched.iter().filter(|m| m.is_none()).count(), 1);
    }

    #[test]
    fn of_two_equal_values_the_hub_holds_the_required_one_if_it_can() {
        // 70 70: the first indeterminate (acknowledged blindly), the second acknowledged.
        let machine = [0x70, 0x70, 0x7F];
        let hub = [0x70, 0x7F];
        assert_eq!(align(&machine, &hub, |i| i != 0), vec![Some(1), Some(2)]);
        assert_eq!(align(&machine, &hub, |i| i != 1), vec![Some(0), Some(2)]);
    }

    proptest! {
        /// A hub log that is the machine's log with some exceptions left out lines up whole:
        /// every hub exception stands for one of the machine's, in order, none left extra.
        #[test]
        fn a_subsequence_lines_up_whole(
            machine in proptest::collection::vec(0x70u8..0x73, 0..60),
            keep in proptest::collection::vec(any::<bool>(), 60),
        ) {
            let hub: Vec<u8> = machine.iter().zip(&keep).filter(|(_, k)| **k).map(|(c, _)| *c).collect();
            let matched = align(&machine, &hub, |i| i % 2 == 0);
            prop_assert!(matched.iter().all(Option::is_some));
            let indices: Vec<usize> = matched.into_iter().flatten().collect();
            prop_assert!(indices.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(indices.iter().zip(&hub).all(|(&i, &c)| machine[i] == c));
        }

        /// Removing k acknowledged ids from a perfect log is k lost, and nothing else.
        #[test]
        fn dropping_ids_is_counted_as_lost(n in 1usize..200, drop in proptest::collection::btree_set(0usize..200, 0..20)) {
            let acknowledged: Vec<usize> = (0..n).collect();
            let observed: Vec<usize> = acknowledged.iter().copied().filter(|i| !drop.contains(i)).collect();
            let verdict = check(&History::acknowledged(acknowledged), &observed);
            prop_assert_eq!(verdict.lost, drop.iter().filter(|&&i| i < n).count());
            prop_assert_eq!((verdict.duplicated, verdict.unexpected, verdict.reordered), (0, 0, 0));
        }

        /// A swap of two neighbours is one reordered id; the rest is untouched.
        #[test]
        fn swapping_neighbours_is_one_reordering(n in 2usize..200, at in 0usize..199) {
            let at = at % (n - 1);
            let acknowledged: Vec<usize> = (0..n).collect();
            let mut observed = acknowledged.clone();
            observed.swap(at, at + 1);
            let verdict = check(&History::acknowledged(acknowledged), &observed);
            prop_assert_eq!(verdict.reordered, 1);
            prop_assert_eq!((verdict.lost, verdict.duplicated, verdict.unexpected), (0, 0, 0));
        }

        /// Any hub log at all: the counts add up to what the hub holds.
        #[test]
        fn the_counts_account_for_every_event_the_hub_holds(
            acknowledged in proptest::collection::btree_set(0u32..100, 0..50),
            observed in proptest::collection::vec(0u32..120, 0..80),
        ) {
            let history = History::acknowledged(acknowledged.iter().copied().collect());
            let verdict = check(&history, &observed);
            let distinct = observed.iter().collect::<BTreeSet<_>>().len();
            prop_assert_eq!(verdict.observed, verdict.duplicated + distinct);
            prop_assert_eq!(distinct, verdict.acknowledged - verdict.lost + verdict.unexpected + verdict.recovered);
        }
    }
}
