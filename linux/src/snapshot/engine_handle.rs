//! The one place the driver talks to the engine: lock it, feed inputs (draining its actions
//! after each, as its protocol requires), poll it, unlock, then carry the actions out, with
//! adjacent unprotects merged into one call. Every thread goes through [`EngineHandle::turn`];
//! the simulator's event loop is the same hub without the lock.

use super::shared::SnapshotError;
use crate::sync::shim::{Mutex, MutexGuard, lock};
use std::time::Instant;
use wpsnap_core::{
    Action, Capture, Engine, EngineError, FaultError, FaultOutcome, Lane, Nanos, PageIndex, PageRun,
    coalesce_unprotects,
};

/// Most actions one turn is expected to produce; the buffer grows past it if a turn feeds
/// many faults (each may add a wake-up), and shrinks back.
const TURN_ACTIONS_EXPECTED: usize = 16;

/// What the engine's actions do to the world: the session implements it on the real uffd.
pub(super) trait ActionTarget {
    fn unprotect(&self, run: PageRun) -> Result<(), SnapshotError>;
    fn wake(&self, page: PageIndex) -> Result<(), SnapshotError>;
    /// Cancelled: remove all protection and wake every waiter.
    fn unprotect_all(&self);
    /// Every page saved (and drained): stop the threads.
    fn complete(&self);
}

/// The engine and what must change with it atomically.
struct EngineState {
    engine: Engine,
    /// When the engine was last given `now`, so no thread hands it an earlier time.
    last_now: Nanos,
}

/// The engine behind its mutex, with the session's clock.
pub(super) struct EngineHandle {
    state: Mutex<EngineState>,
    epoch: Instant,
}

/// One locked turn with the engine: every input drains the engine's actions into the turn,
/// so none is left behind; they are carried out when the turn ends, after the unlock.
pub(super) struct Turn<'a> {
    engine: &'a mut Engine,
    now: Nanos,
    actions: Vec<Action>,
}

impl Turn<'_> {
    fn drain(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            self.actions.push(action);
        }
    }

    pub fn now(&self) -> Nanos {
        self.now
    }
    /// Read-only access to the engine.
    pub fn engine(&self) -> &Engine {
        self.engine
    }
    pub fn fault(&mut self, page: u64) -> Result<FaultOutcome, FaultError> {
        let outcome = self.engine.handle_fault(self.now, PageIndex(page));
        self.drain();
        outcome
    }
    pub fn captured(&mut self, capture: Capture) -> Result<(), EngineError> {
        let result = self.engine.handle_captured(self.now, capture);
        self.drain();
        result
    }
    pub fn sink_drained(&mut self, pages: u64) -> Result<(), EngineError> {
        let result = self.engine.handle_sink_drained(self.now, pages);
        self.drain();
        result
    }
    pub fn stream_bytes(&mut self, bytes: u64) {
        self.engine.handle_stream_bytes(self.now, bytes);
        self.drain();
    }
    pub fn fault_wait(&mut self, wait: Nanos) {
        self.engine.handle_fault_wait(self.now, wait);
        self.drain();
    }
    /// Tells the engine its timer is due, if it is.
    pub fn timeout_if_due(&mut self) {
        if self.engine.poll_timeout().is_some_and(|at| at <= self.now) {
            self.engine.handle_timeout(self.now);
            self.drain();
        }
    }
    pub fn cancel(&mut self, reason: String) {
        self.engine.cancel(self.now, reason);
        self.drain();
    }
    pub fn poll_capture(&mut self, lane: Lane) -> Option<Capture> {
        self.engine.poll_capture(self.now, lane)
    }
    /// How long until the engine's timer, if it set one.
    pub fn timeout_in(&self) -> Option<std::time::Duration> {
        self.engine.poll_timeout().map(|at| std::time::Duration::from_nanos(at.saturating_since(self.now).as_ns()))
    }
}

impl EngineHandle {
    /// An engine whose clock reads zero at `epoch` (the region was just protected).
    pub fn new(engine: Engine, epoch: Instant) -> EngineHandle {
        EngineHandle { state: Mutex::new(EngineState { engine, last_now: Nanos::ZERO }), epoch }
    }

    /// Time since the session's epoch.
    pub fn elapsed(&self) -> Nanos {
        Nanos(self.epoch.elapsed().as_nanos().min(u64::MAX as u128) as u64)
    }

    fn lock(&self) -> (MutexGuard<'_, EngineState>, Nanos) {
        let mut state = lock(&self.state);
        let now = self.elapsed().max(state.last_now);
        state.last_now = now;
        (state, now)
    }

    /// Runs `body` on the locked engine, then (unlocked) carries out the actions it left in
    /// order, adjacent unprotects merged. The first failing action's error is returned after
    /// the rest were still carried out (a wake-up must not be skipped because another failed).
    pub fn turn<R>(
        &self,
        target: &impl ActionTarget,
        body: impl FnOnce(&mut Turn<'_>) -> R,
    ) -> Result<R, SnapshotError> {
        let (result, mut actions) = {
            let (mut state, now) = self.lock();
            let mut turn = Turn { engine: &mut state.engine, now, actions: Vec::with_capacity(TURN_ACTIONS_EXPECTED) };
            let result = body(&mut turn);
            (result, turn.actions)
        };
        coalesce_unprotects(&mut actions);
        let mut outcome = Ok(());
        for action in actions {
            let step = match action {
                Action::Unprotect(run) => target.unprotect(run),
                Action::Wake(page) => target.wake(page),
                Action::UnprotectAll => {
                    target.unprotect_all();
                    Ok(())
                }
                // The qemu thread learns of its sleep from `lane_asleep_until`.
                Action::IterationEnd(_) => Ok(()),
                Action::Complete => {
                    target.complete();
                    Ok(())
                }
            };
            if outcome.is_ok() {
                outcome = step;
            }
        }
        outcome.map(|()| result)
    }

    /// Reads the engine without feeding it (progress, reports).
    pub fn inspect<R>(&self, body: impl FnOnce(&Engine, Nanos) -> R) -> R {
        let state = lock(&self.state);
        body(&state.engine, state.last_now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use wpsnap_core::{EngineConfig, PolicyConfig, ServiceModel};

    #[derive(Default)]
    struct Recorder(RefCell<Vec<String>>);
    impl ActionTarget for Recorder {
        fn unprotect(&self, run: PageRun) -> Result<(), SnapshotError> {
            self.0.borrow_mut().push(format!("unprotect {}+{}", run.first.0, run.count));
            Ok(())
        }
        fn wake(&self, page: PageIndex) -> Result<(), SnapshotError> {
            self.0.borrow_mut().push(format!("wake {}", page.0));
            Ok(())
        }
        fn unprotect_all(&self) {
            self.0.borrow_mut().push("unprotect all".into());
        }
        fn complete(&self) {
            self.0.borrow_mut().push("complete".into());
        }
    }

    #[test]
    fn a_turn_drains_after_every_input_and_applies_after_the_unlock() {
        let config = EngineConfig::new(4096, 4, ServiceModel::Qemu, PolicyConfig::None);
        let handle = EngineHandle::new(Engine::new(config, Nanos::ZERO).expect("valid"), Instant::now());
        let target = Recorder::default();
        for _ in 0..4 {
            let capture = handle.turn(&target, |t| t.poll_capture(Lane::Single)).expect("ok").expect("scan");
            handle.turn(&target, |t| t.captured(capture)).expect("ok").expect("in flight");
        }
        // Two inputs in one turn: a fault on a saved page wakes, then another.
        handle
            .turn(&target, |t| {
                t.fault(1).expect("in region");
                t.fault(2).expect("in region");
            })
            .expect("ok");
        let log = target.0.borrow().join(", ");
        assert_eq!(log, "unprotect 0+1, unprotect 1+1, unprotect 2+1, unprotect 3+1, complete, wake 1, wake 2");
        assert!(handle.inspect(|e, _| e.is_complete()));
    }
}
