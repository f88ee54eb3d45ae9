//! The tower contract (`support/contract_suite.rs`) on an owned breaker handle: the
//! response future holds a `cutout::OwnedPermit`.

type Shared = cutout::CircuitBreaker;

fn share(breaker: cutout::CircuitBreaker) -> Shared {
    breaker
}

#[path = "support/counted.rs"]
mod counted;
#[path = "support/contract_suite.rs"]
mod suite;
