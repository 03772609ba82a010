//! How long a test waits for what it expects, and the polling wait.

use std::time::Duration;

/// Longest wait for anything a test expects of an in-process stack.
pub const WAIT: Duration = Duration::from_secs(10);

/// The same for stacks that also start a database, an admin server or a process.
pub const LONG_WAIT: Duration = Duration::from_secs(20);

/// Polls `f` every 10 ms until it holds; panics after [`WAIT`].
pub async fn wait_until(f: impl FnMut() -> bool) {
    wait_for("condition", WAIT, f).await;
}

/// Polls `done` every 10 ms until it holds; panics after `within`, naming `what`.
pub async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A deadline for polling loops whose condition needs an `.await` (an HTTP call, a
/// query): `let d = Deadline::after(LONG_WAIT); while d.pending() { ... }`. Loops
/// bounded by a count of tries instead give up early on a loaded machine.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(tokio::time::Instant);

impl Deadline {
    pub fn after(within: Duration) -> Self {
        Self(tokio::time::Instant::now() + within)
    }

    /// Whether there is still time.
    pub fn pending(&self) -> bool {
        tokio::time::Instant::now() < self.0
    }
}
