//! The snapshot stream over simulated TCP (turmoil): it completes with the right image, or
//! fails with a clear error after its timeout; writers are never left blocked.

use wpsnap_sim::net::{NetOutcome, NetScenario, Partition, run_net};

fn run_twice(scenario: &NetScenario) -> NetOutcome {
    let first = run_net(scenario).unwrap_or_else(|e| panic!("seed={}: {e}", scenario.seed));
    let second = run_net(scenario).unwrap_or_else(|e| panic!("seed={}: {e}", scenario.seed));
    assert_eq!(first, second, "seed={}: two runs of one seed differ", scenario.seed);
    first
}

fn assert_complete(o: &NetOutcome, pages: u64) {
    let ctx = format!("seed={}", o.seed);
    assert_eq!(o.sender.error, None, "{ctx}");
    assert_eq!(o.sender.writers_blocked_at_end, 0, "{ctx}");
    assert_eq!(o.sender.pages_saved, pages, "{ctx}");
    let receiver = o.receiver.as_ref().unwrap_or_else(|| panic!("{ctx}: receiver did not finish"));
    assert!(receiver.verified, "{ctx}: {:?}", receiver.error);
    assert_eq!(receiver.pages, pages, "{ctx}");
    assert_eq!(o.image_equals_snapshot_instant, Some(true), "{ctx}: received image is not the snapshot instant");
}

#[test]
fn a_healthy_link_delivers_the_snapshot_instant() {
    for seed in [1, 2] {
        let scenario = NetScenario::healthy(seed);
        let outcome = run_twice(&scenario);
        assert_complete(&outcome, scenario.pages);
        assert!(outcome.sender.faults > 0, "seed={seed}: writers never faulted, the test proves little");
    }
}

#[test]
fn a_partition_that_heals_before_the_timeout_still_completes() {
    let mut scenario = NetScenario::healthy(3);
    scenario.partition = Some(Partition { start_ms: 20, heal_after_ms: Some(400) });
    let outcome = run_twice(&scenario);
    assert_complete(&outcome, scenario.pages);
    assert!(outcome.elapsed_ms >= 420, "the partition did not delay anything: {} ms", outcome.elapsed_ms);
}

#[test]
fn a_partition_that_never_heals_fails_clearly_after_the_timeout_and_frees_the_writers() {
    let mut scenario = NetScenario::healthy(4);
    scenario.partition = Some(Partition { start_ms: 20, heal_after_ms: None });
    let outcome = run_twice(&scenario);
    let error = outcome.sender.error.clone().unwrap_or_default();
    assert!(error.contains("no acknowledgement") && error.contains("1000 ms"), "unclear error: {error:?}");
    assert_eq!(outcome.sender.writers_blocked_at_end, 0);
    assert!(outcome.sender.pages_saved < scenario.pages, "it should have failed mid-snapshot");
    assert!(outcome.elapsed_ms >= 20 + scenario.io_timeout_ms, "gave up before its timeout: {}", outcome.elapsed_ms);
    assert_ne!(outcome.image_equals_snapshot_instant, Some(true));
}

#[test]
fn a_lossy_link_either_completes_correctly_or_fails_clearly() {
    // turmoil's TCP does not retransmit: a random link failure drops segments in flight,
    // which breaks the stream like a reset connection would. Some seeds get through.
    let mut completed = 0;
    let mut failed = 0;
    for seed in 5..17 {
        let mut scenario = NetScenario::healthy(seed);
        scenario.fail_rate = 0.003;
        scenario.repair_rate = 0.5;
        let outcome = run_twice(&scenario);
        assert_eq!(outcome.sender.writers_blocked_at_end, 0, "seed={seed}");
        match &outcome.sender.error {
            None => {
                assert_complete(&outcome, scenario.pages);
                completed += 1;
            }
            Some(e) => {
                assert!(e.contains("no acknowledgement") || e.contains("rejected"), "seed={seed}: unclear error {e}");
                assert!(outcome.image_equals_snapshot_instant.is_none(), "seed={seed}");
                failed += 1;
            }
        }
    }
    assert!(completed > 0 && failed > 0, "both paths should be taken: {completed} completed, {failed} failed");
}
