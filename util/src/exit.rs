//! The one exit-code table of `migrate` (design section 6), mapped in one place: the binary
//! exits with it, and the demo (`migrate demo`, which runs `migrate` as its children) reads its
//! children's codes and reports its own with it.

/// Outcomes and their exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: success (including a rollback the operator asked for that succeeded).
    Ok = 0,
    /// 1: bad input, configuration or usage.
    BadInput = 1,
    /// 2: `status` found an unhealthy state or drift.
    Unhealthy = 2,
    /// 3: pre-flight blocked, nothing changed.
    Blocked = 3,
    /// 4: verification failed and the wave was rolled back by the tool.
    RolledBack = 4,
    /// 6: paused (inconclusive check, or waiting for confirmation).
    Paused = 6,
    /// 7: stale or edited plan.
    StalePlan = 7,
    /// 8: lock held.
    Locked = 8,
    /// 9: rollback failed or dirty state.
    Dirty = 9,
    /// 130: interrupted, resumable.
    Interrupted = 130,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The outcome a `migrate` process exited with (any code not in the table, or none: a
    /// signal, is [`Exit::BadInput`]).
    pub fn from_code(code: i32) -> Exit {
        const ALL: [Exit; 10] = [
            Exit::Ok,
            Exit::BadInput,
            Exit::Unhealthy,
            Exit::Blocked,
            Exit::RolledBack,
            Exit::Paused,
            Exit::StalePlan,
            Exit::Locked,
            Exit::Dirty,
            Exit::Interrupted,
        ];
        ALL.into_iter().find(|e| i32::from(e.code()) == code).unwrap_or(Exit::BadInput)
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_design_table() {
        let table = [
            (Exit::Ok, 0),
            (Exit::BadInput, 1),
            (Exit::Unhealthy, 2),
            (Exit::Blocked, 3),
            (Exit::RolledBack, 4),
            (Exit::Paused, 6),
            (Exit::StalePlan, 7),
            (Exit::Locked, 8),
            (Exit::Dirty, 9),
            (Exit::Interrupted, 130),
        ];
        for (e, c) in table {
            assert_eq!(e.code(), c, "{e:?}");
            assert_eq!(Exit::from_code(c.into()), e);
        }
        assert_eq!(Exit::from_code(5), Exit::BadInput);
        assert_eq!(Exit::from_code(-1), Exit::BadInput);
    }
}
