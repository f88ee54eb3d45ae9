//! The fleet mode on paused time: order services over in-memory pipes, the trip signal over
//! the in-memory bus. Nothing lost or paid twice; with the signal, remote holds open the
//! breakers of instances that had not tripped yet, and fewer calls reach the failing service.

use std::time::Duration;

use cutout_fleet::MemoryBus;
use outage_drill::drill::DrillConfig;
use outage_drill::fleet::{self, FleetConfig, Signal};
use outage_drill::net::Transport;

fn config(dir: &std::path::Path, instances: usize, quorum: usize) -> FleetConfig {
    let mut drill = DrillConfig::new(dir);
    drill.duration = Duration::from_secs(10);
    drill.outage_start = Duration::from_secs(3);
    drill.outage = Duration::from_secs(4);
    drill.rate = 20;
    drill.transport = Transport::Memory;
    FleetConfig {
        drill,
        instances,
        quorum,
        rates: Vec::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn the_signal_holds_the_fleet_and_loses_nothing() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let config = config(dir.path(), 4, 1);
    let alone = fleet::run(&config, Signal::Off).await?;
    let bus = MemoryBus::new();
    let shared = fleet::run(&config, Signal::Memory(&bus)).await?;
    for run in [&alone, &shared] {
        assert_eq!(run.instances.len(), 4);
        assert!(run.instances.iter().all(|i| i.sent == 200));
        assert_eq!((run.failed(), run.lost(), run.paid_twice()), (0, 0, 0));
        assert!(run.all_stopped_after().is_some());
        // Every request counted per instance reached the one payment service.
        assert_eq!(
            run.calls_during_outage(),
            run.payment.requests_during_outage
        );
    }
    assert_eq!(alone.instances.iter().map(|i| i.holds).sum::<u64>(), 0);
    assert!(shared.instances.iter().map(|i| i.holds).sum::<u64>() > 0);
    assert!(
        shared.calls_during_outage() < alone.calls_during_outage(),
        "with the signal {} calls, alone {}",
        shared.calls_during_outage(),
        alone.calls_during_outage()
    );
    let table = fleet::table(&[alone, shared]);
    assert!(table.contains("| 4 | off |"), "{table}");
    assert!(table.contains("| 4 | memory, quorum 1 |"), "{table}");
    Ok(())
}
