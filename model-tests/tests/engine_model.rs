//! Property 1 (docs/testing.md): the engine against a reference model.
//!
//! proptest-state-machine generates random sequences of faults, lane polls, capture
//! completions, sink drains, time steps, real-wait reports and timeouts over random
//! configurations. The reference model (`Shadow`) keeps, independently of the engine's
//! bitmap, cursor and queue, what each page's state must be and what each rule allows, and
//! checks every engine output against it:
//! - each page is saved at most once, and exactly once when the snapshot completes;
//! - a queued fault is never overtaken by a scan page started after it was queued;
//! - a fault on a saved page only wakes; a fault on a queued or in-flight page does nothing;
//! - an iteration ends exactly when its limit (50 ms / 1000 ms) is passed at a multiple of 64;
//! - `seed`: after a slow fault, no scan page starts inside a 5 ms poll unless a fault arrived,
//!   for the next 200 saved pages; `bandwidth`: scan pages by time t ≤ burst + rate·t;
//! - the snapshot completes within a bounded number of steps once inputs stop (liveness).

use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use std::collections::VecDeque;
use wpsnap_core::policy::{BandwidthParams, LatencyTargetParams, LimitScanRateParams};
use wpsnap_core::{
    Action, Capture, Cause, Engine, EngineConfig, FaultError, FaultOutcome, IterationMode, Lane, Nanos, PageIndex,
    PageRun, PolicyConfig, ServiceModel,
};

const PAGE: u64 = 4096;
/// Liveness: steps allowed per page when driving a snapshot to completion.
const LIVENESS_STEPS_PER_PAGE: u64 = 8;

#[derive(Clone, Debug)]
pub struct Setup {
    config: EngineConfig,
}

#[derive(Clone, Debug)]
pub enum Step {
    /// A writer faults on page `page % page_count`.
    Fault(u64),
    Poll(Lane),
    Complete(Lane),
    Drain(u64),
    Advance(Nanos),
    ReportWait(Nanos),
    Timeout,
}

fn policy_strategy() -> impl Strategy<Value = PolicyConfig> {
    prop_oneof![
        Just(PolicyConfig::None),
        Just(PolicyConfig::limit_scan_rate()),
        Just(PolicyConfig::LimitScanRateTrueLatency(LimitScanRateParams::default())),
        (1u64..=2000, 1u64..=8).prop_map(|(rate, burst)| PolicyConfig::Bandwidth(BandwidthParams {
            bytes_per_sec: rate * PAGE,
            burst_bytes: burst * PAGE,
        })),
        (100_000u64..5_000_000).prop_map(|target| PolicyConfig::LatencyTarget(LatencyTargetParams {
            target_p99_ns: target,
            ..LatencyTargetParams::default()
        })),
    ]
}

fn config_strategy() -> impl Strategy<Value = EngineConfig> {
    (
        1u64..=300,
        prop_oneof![Just(ServiceModel::Qemu), Just(ServiceModel::Decoupled)],
        policy_strategy(),
        prop_oneof![Just(None), Just(Some(IterationMode::Ordinary)), Just(Some(IterationMode::WriteTracking))],
        any::<bool>(),
        1u64..=8,
        2u64..=32,
        1usize..=8,
    )
        .prop_map(|(pages, model, policy, mode, follow, batch, staging, queue)| {
            let mut c = EngineConfig::new(PAGE, pages, model, policy);
            c.iteration_mode = mode;
            c.scan_follows_faults = follow;
            c.scan_batch_pages = batch;
            c.staging_pages = staging;
            c.fault_reserve_pages = staging / 4;
            c.fault_queue_pages = queue;
            c
        })
}

pub struct EngineReference;

impl ReferenceStateMachine for EngineReference {
    type State = Setup;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Setup> {
        config_strategy().prop_map(|config| Setup { config }).boxed()
    }

    fn transitions(state: &Setup) -> BoxedStrategy<Step> {
        let lanes = state.config.service_model.lanes().to_vec();
        let lane = proptest::sample::select(lanes);
        prop_oneof![
            3 => any::<u64>().prop_map(Step::Fault),
            4 => lane.clone().prop_map(Step::Poll),
            4 => lane.prop_map(Step::Complete),
            2 => (1u64..=16).prop_map(Step::Drain),
            3 => (0u64..=12_000_000).prop_map(|ns| Step::Advance(Nanos(ns))),
            1 => (0u64..=20_000_000).prop_map(|ns| Step::ReportWait(Nanos(ns))),
            1 => Just(Step::Timeout),
        ]
        .boxed()
    }

    fn apply(state: Setup, _step: &Step) -> Setup {
        state
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageState {
    Pending,
    Queued,
    InFlight,
    Saved,
}

/// The reference model: what the engine must be doing, kept with plain collections.
struct Shadow {
    config: EngineConfig,
    pages: Vec<PageState>,
    saves: Vec<u32>,
    queue: VecDeque<u64>,
    staged: u64,
    iteration_start: Nanos,
    iteration_pages: u64,
    iteration_limit: Nanos,
    // seed rule
    seed_last_fault: Option<Nanos>,
    seed_slow_wait: bool,
    seed_counter: u32,
    seed_poll_until: Option<Nanos>,
    scan_pages_started: u64,
}

impl Shadow {
    fn new(config: &EngineConfig) -> Shadow {
        let n = config.page_count as usize;
        Shadow {
            config: config.clone(),
            pages: vec![PageState::Pending; n],
            saves: vec![0; n],
            queue: VecDeque::new(),
            staged: 0,
            iteration_start: Nanos::ZERO,
            iteration_pages: 0,
            iteration_limit: config.effective_iteration_mode().wait_max(),
            seed_last_fault: None,
            seed_slow_wait: false,
            seed_counter: 0,
            seed_poll_until: None,
            scan_pages_started: 0,
        }
    }

    fn seed_params(&self) -> Option<(LimitScanRateParams, bool)> {
        match self.config.policy {
            PolicyConfig::LimitScanRate(p) => Some((p, false)),
            PolicyConfig::LimitScanRateTrueLatency(p) => Some((p, true)),
            _ => None,
        }
    }

    fn on_fault(&mut self, now: Nanos, page: u64, outcome: Result<FaultOutcome, FaultError>, actions: &[Action]) {
        let state = self.pages[page as usize];
        match outcome {
            Err(FaultError::QueueFull { .. }) => {
                assert_eq!(state, PageState::Pending, "only a new page needs queue room");
                assert!(self.queue.len() >= self.config.fault_queue_pages);
                assert!(actions.is_empty());
                return;
            }
            Err(e) => panic!("in-region fault refused: {e}"),
            Ok(FaultOutcome::Queued) => {
                assert_eq!(state, PageState::Pending);
                assert!(actions.is_empty());
                self.pages[page as usize] = PageState::Queued;
                self.queue.push_back(page);
            }
            Ok(FaultOutcome::AlreadyInProgress) => {
                assert!(matches!(state, PageState::Queued | PageState::InFlight), "{state:?}");
                assert!(actions.is_empty());
            }
            Ok(FaultOutcome::AlreadySaved) => {
                assert_eq!(state, PageState::Saved);
                assert_eq!(actions, [Action::Wake(PageIndex(page))], "a saved page only wakes");
            }
        }
        self.seed_last_fault = Some(now);
        self.seed_poll_until = None;
    }

    fn on_capture_started(&mut self, now: Nanos, capture: &Capture) {
        let run = capture.run();
        match capture.cause() {
            Cause::Fault => {
                assert_eq!(run.count, 1);
                let expected = self.queue.pop_front().expect("a fault capture needs a queued fault");
                assert_eq!(run.first.0, expected, "faults are served in the order they were read");
            }
            Cause::Scan => {
                assert!(self.queue.is_empty(), "scan page {run:?} overtook queued faults {:?}", self.queue);
                assert!(run.count <= self.config.scan_batch_pages);
                for page in run.pages() {
                    assert_eq!(self.pages[page.0 as usize], PageState::Pending, "scan of a non-pending {page}");
                }
                self.check_policy_allows_scan(now, run);
                self.scan_pages_started += run.count;
            }
        }
        for page in run.pages() {
            self.pages[page.0 as usize] = PageState::InFlight;
        }
        if self.config.service_model == ServiceModel::Decoupled {
            let reserve = match capture.cause() {
                Cause::Fault => 0,
                Cause::Scan => self.config.fault_reserve_pages,
            };
            assert!(self.staged + run.count + reserve <= self.config.staging_pages, "staging over its bound");
            self.staged += run.count;
        }
    }

    fn check_policy_allows_scan(&self, now: Nanos, run: PageRun) {
        if self.seed_params().is_some() {
            if let Some(until) = self.seed_poll_until {
                assert!(now >= until, "seed: scan at {now:?} inside a poll until {until:?}");
            }
            if self.seed_counter > 0 {
                assert_eq!(run.count, 1, "seed: one page at a time while throttled");
            }
        }
        if let PolicyConfig::Bandwidth(p) = self.config.policy {
            let rate = p.bytes_per_sec / PAGE;
            let burst = p.burst_bytes / PAGE;
            let allowed = burst as u128 + (now.as_ns() as u128 * rate as u128) / 1_000_000_000;
            assert!(
                (self.scan_pages_started + run.count) as u128 <= allowed,
                "bandwidth: {} scan pages by {now:?}, allowed {allowed}",
                self.scan_pages_started + run.count
            );
        }
    }

    fn on_capture_completed(&mut self, now: Nanos, run: PageRun, actions: &[Action], running: bool) {
        if !running {
            return;
        }
        assert_eq!(actions.first(), Some(&Action::Unprotect(run)), "a saved run is unprotected first");
        for page in run.pages() {
            self.pages[page.0 as usize] = PageState::Saved;
            self.saves[page.0 as usize] += 1;
            assert_eq!(self.saves[page.0 as usize], 1, "{page} saved twice");
        }
        // Iteration rule.
        let before = self.iteration_pages;
        self.iteration_pages += run.count;
        let crossed = before / 64 != self.iteration_pages / 64;
        let expect_end = crossed && now.saturating_since(self.iteration_start) > self.iteration_limit;
        let ended = actions.iter().any(|a| matches!(a, Action::IterationEnd(_)));
        assert_eq!(ended, expect_end, "iteration end at {} pages, {now:?}", self.iteration_pages);
        if ended {
            self.iteration_start = now;
            self.iteration_pages = 0;
        }
        // Seed rule.
        if let Some((params, true_latency)) = self.seed_params() {
            let measure = self.seed_last_fault.take().map(|t| now.saturating_since(t));
            let slow = if true_latency {
                std::mem::take(&mut self.seed_slow_wait)
            } else {
                measure.is_some_and(|m| m.as_ns() > params.slow_fault_ns)
            };
            if slow {
                self.seed_counter = params.throttle_pages;
            }
            if self.seed_counter > 0 {
                self.seed_counter -= 1;
                self.seed_poll_until = Some(now + Nanos(params.poll_timeout_ns));
            } else {
                self.seed_poll_until = None;
            }
        } else {
            self.seed_last_fault = None;
        }
        let complete = actions.contains(&Action::Complete);
        assert_eq!(complete, self.all_saved() && self.staged == 0 && self.queue.is_empty(), "completion");
    }

    fn on_wait_reported(&mut self, wait: Nanos) {
        if let Some((params, true)) = self.seed_params()
            && wait.as_ns() > params.slow_fault_ns
        {
            self.seed_slow_wait = true;
        }
    }

    fn all_saved(&self) -> bool {
        self.pages.iter().all(|&p| p == PageState::Saved)
    }
}

pub struct Harness {
    engine: Engine,
    shadow: Shadow,
    now: Nanos,
    held: [Option<Capture>; 3],
    /// Staged pages not yet drained (decoupled).
    staged: u64,
}

fn lane_slot(lane: Lane) -> usize {
    match lane {
        Lane::Single => 0,
        Lane::Fault => 1,
        Lane::Scan => 2,
    }
}

impl Harness {
    fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.engine.poll_action()).collect()
    }

    fn poll(&mut self, lane: Lane) -> bool {
        let slot = lane_slot(lane);
        if self.held[slot].is_some() {
            assert!(self.engine.poll_capture(self.now, lane).is_none(), "a busy lane was offered work");
            return false;
        }
        match self.engine.poll_capture(self.now, lane) {
            Some(capture) => {
                self.shadow.on_capture_started(self.now, &capture);
                self.held[slot] = Some(capture);
                true
            }
            None => false,
        }
    }

    fn complete(&mut self, lane: Lane) -> bool {
        let Some(capture) = self.held[lane_slot(lane)].take() else { return false };
        let run = capture.run();
        let running = self.engine.is_running();
        self.engine.handle_captured(self.now, capture).expect("held capture is in flight");
        if self.engine.config().service_model == ServiceModel::Decoupled {
            self.staged += run.count;
        }
        let actions = self.drain();
        self.shadow.on_capture_completed(self.now, run, &actions, running);
        true
    }

    fn drain_sink(&mut self, pages: u64) {
        let pages = pages.min(self.staged);
        if pages == 0 {
            return;
        }
        self.engine.handle_sink_drained(self.now, pages).expect("staged pages");
        self.staged -= pages;
        self.shadow.staged -= pages;
        let actions = self.drain();
        let complete = actions.contains(&Action::Complete);
        assert_eq!(complete, self.shadow.all_saved() && self.shadow.staged == 0 && self.shadow.queue.is_empty());
    }

    fn check(&self) {
        let engine_pending = self.engine.pages_pending();
        let shadow_pending = self.shadow.pages.iter().filter(|&&p| p == PageState::Pending).count() as u64;
        assert_eq!(engine_pending, shadow_pending, "pending pages disagree");
        assert_eq!(self.engine.faults_queued(), self.shadow.queue.len());
        let stats = self.engine.stats();
        let saved = self.shadow.saves.iter().map(|&s| s as u64).sum::<u64>();
        assert_eq!(stats.pages_saved(), saved);
        if self.engine.config().service_model == ServiceModel::Decoupled {
            assert!(self.engine.staging_used() <= self.engine.config().staging_pages);
        }
    }

    /// Liveness phase: with no new faults, the snapshot completes in bounded steps.
    fn drive_to_completion(&mut self) {
        let lanes = self.engine.config().service_model.lanes().to_vec();
        let steps_max = self.engine.config().page_count * LIVENESS_STEPS_PER_PAGE + 64;
        let mut steps = 0;
        while !self.engine.is_complete() {
            steps += 1;
            assert!(steps <= steps_max, "no completion after {steps_max} steps: {:?}", self.engine);
            let mut progressed = false;
            for &lane in &lanes {
                progressed |= self.complete(lane);
                progressed |= self.poll(lane);
            }
            if self.staged > 0 {
                self.drain_sink(self.staged);
                progressed = true;
            }
            if !progressed {
                // Only a policy can hold the scan back now; it must have said until when.
                let until = self.engine.poll_timeout().expect("stalled with no timeout: liveness bug");
                self.now = self.now.max(until);
                self.engine.handle_timeout(self.now);
            }
            self.check();
        }
        assert!(self.shadow.saves.iter().all(|&s| s == 1), "every page saved exactly once");
    }
}

impl StateMachineTest for Harness {
    type SystemUnderTest = Harness;
    type Reference = EngineReference;

    fn init_test(setup: &Setup) -> Harness {
        Harness {
            engine: Engine::new(setup.config.clone(), Nanos::ZERO).expect("generated configs are valid"),
            shadow: Shadow::new(&setup.config),
            now: Nanos::ZERO,
            held: [None, None, None],
            staged: 0,
        }
    }

    fn apply(mut h: Harness, _setup: &Setup, step: Step) -> Harness {
        match step {
            Step::Fault(raw) => {
                let page = raw % h.engine.config().page_count;
                let outcome = h.engine.handle_fault(h.now, PageIndex(page));
                let actions = h.drain();
                h.shadow.on_fault(h.now, page, outcome, &actions);
            }
            Step::Poll(lane) => {
                h.poll(lane);
            }
            Step::Complete(lane) => {
                h.complete(lane);
            }
            Step::Drain(pages) => h.drain_sink(pages),
            Step::Advance(dt) => h.now = h.now + dt,
            Step::ReportWait(wait) => {
                h.engine.handle_fault_wait(h.now, wait);
                h.shadow.on_wait_reported(wait);
            }
            Step::Timeout => {
                if let Some(until) = h.engine.poll_timeout() {
                    h.now = h.now.max(until);
                    h.engine.handle_timeout(h.now);
                }
            }
        }
        h
    }

    fn check_invariants(h: &Harness, _setup: &Setup) {
        h.check();
    }

    fn teardown(mut h: Harness, _setup: Setup) {
        h.drive_to_completion();
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        // Cases come from PROPTEST_CASES (256 when unset); scripts/test.sh sets the CI budget.
        max_shrink_iters: 4096,
        .. ProptestConfig::default()
    })]
    #[test]
    fn engine_matches_the_reference_model(sequential 1..200 => Harness);
}
