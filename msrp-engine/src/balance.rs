//! Which worker takes new connections. The MSRP workers share the listening
//! sockets, and every worker's poll reports a new connection; the one that
//! accepts first used to take them all (it accepts until the backlog is
//! empty), and the wake-up order favours the same worker again and again.
//! A worker holding more than the least loaded one plus some slack leaves
//! new connections to the others: they saw the same readiness, and the
//! least loaded one never declines. Each worker shares its count before
//! every accept (Kamailio: a counter per worker in shm); one that stops
//! part-way through a backlog wakes the least loaded one, which may have
//! handled its own readiness event already, and every worker looks at the
//! listeners once a second, for connections that closed elsewhere since
//! (a count is shared again only at the next accept or that look).

/// Connections a worker may hold beyond the least loaded one before it
/// leaves new connections to the others.
pub const SLACK: u64 = 16;

/// Whether a worker holding `mine` connections accepts new ones, when the
/// least loaded worker holds `least` (itself included). The slack grows
/// with the load (1/16 of it), so that a large node is not turned away for
/// a few connections' difference.
pub fn accept_turn(mine: u64, least: u64) -> bool {
    mine <= least.saturating_add(SLACK.max(least / 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_loaded_worker_always_accepts() {
        for least in [0, 1, 15, 16, 255, 256, 10_000, u64::MAX] {
            assert!(accept_turn(least, least));
        }
    }

    #[test]
    fn a_worker_past_the_slack_declines() {
        assert!(accept_turn(16, 0));
        assert!(!accept_turn(17, 0));
        assert!(accept_turn(116, 100));
        assert!(!accept_turn(117, 100));
        // 1/16 of the load once that is larger
        assert!(accept_turn(1_600 + 100, 1_600));
        assert!(!accept_turn(1_600 + 101, 1_600));
        assert!(accept_turn(u64::MAX, u64::MAX - 1));
    }
}
