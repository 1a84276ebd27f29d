//! RFC 4976 §6.3: a relay SHOULD close a connection on which AUTH keeps
//! failing, so a client cannot try passwords without end over one
//! connection. The script decides what a failure is by its answer: a 401
//! or 403 to an AUTH that carried credentials (an `Authorization` header;
//! the first 401 of every Digest exchange, the challenge to an AUTH
//! without one, is not a failure). After `max_auth_failures` of them the
//! connection closes once that answer is written; a 2xx answer to an AUTH
//! starts the count again.

use crate::connid::ConnId;
use msrp_core::FrameHead;

use super::Relay;
use crate::script::Actions;

impl Relay {
    /// Counts the script's answer to an AUTH on `t`; closes `t` after the
    /// answer when it was the `max_auth_failures`-th failure in a row.
    pub(crate) fn count_auth_failures(&mut self, t: ConnId, head: &FrameHead, actions: &Actions) {
        let max = self.cfg.max_auth_failures;
        if max == 0 || head.method() != Some(b"AUTH") {
            return;
        }
        let Some(&(code, _)) = actions.replies.last() else {
            return;
        };
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        match code {
            200..=299 => c.auth_failures = 0,
            401 | 403 if head.header("Authorization").is_some() => {
                c.auth_failures += 1;
                if c.auth_failures >= max {
                    log::warn!(
                        "closing connection {} with {}: {} failed AUTHs in a row \
                         (max_auth_failures {max}, RFC 4976 §6.3)",
                        t.0,
                        c.peer,
                        c.auth_failures
                    );
                    // read nothing more; close once the answer is written
                    c.close_after_flush();
                    self.mark_dirty(t);
                }
            }
            _ => {}
        }
    }
}
