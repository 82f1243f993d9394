//! The exit status of every command: 0 pass, 1 blocked (by policy; for `verify` and `export`
//! tampering found; for `test` a failing test), 2 could not decide. One type, so no command
//! hands the process a bare number, and the worse of two statuses is their `max`.

use std::process::{ExitCode, Termination};

use crate::record::verify::VerifyStatus;
use crate::report::Decision;

/// How a command ends. Ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitStatus {
    /// 0: the release (or ledger, or test run) passes.
    Pass = 0,
    /// 1: blocked by policy, tampering found, or a test failed.
    Blocked = 1,
    /// 2: could not decide (usage, input, config, policy or internal error). Never a pass.
    Error = 2,
}

impl ExitStatus {
    /// The process exit code.
    pub(crate) fn code(self) -> u8 {
        self as u8
    }
}

impl From<Decision> for ExitStatus {
    fn from(decision: Decision) -> Self {
        match decision {
            Decision::Pass => Self::Pass,
            Decision::Fail => Self::Blocked,
            Decision::Error => Self::Error,
        }
    }
}

impl From<VerifyStatus> for ExitStatus {
    fn from(status: VerifyStatus) -> Self {
        match status {
            VerifyStatus::Intact => Self::Pass,
            VerifyStatus::Tampered => Self::Blocked,
            VerifyStatus::Unverifiable => Self::Error,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}

impl Termination for ExitStatus {
    fn report(self) -> ExitCode {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones_and_agree_with_each_source() {
        assert_eq!(
            [ExitStatus::Pass, ExitStatus::Blocked, ExitStatus::Error].map(ExitStatus::code),
            [0, 1, 2]
        );
        assert_eq!(
            [Decision::Pass, Decision::Fail, Decision::Error].map(|d| ExitStatus::from(d).code()),
            [0, 1, 2]
        );
        assert_eq!(
            ExitStatus::from(VerifyStatus::Tampered),
            ExitStatus::Blocked
        );
        // The worse of two is the max: a failed publication (Error) outranks a block.
        assert_eq!(
            ExitStatus::Blocked.max(ExitStatus::Error),
            ExitStatus::Error
        );
        assert_eq!(
            ExitStatus::Pass.max(ExitStatus::Blocked),
            ExitStatus::Blocked
        );
    }
}
