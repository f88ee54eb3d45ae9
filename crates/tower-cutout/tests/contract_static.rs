//! The tower contract (`support/contract_suite.rs`) on a `&'static` breaker
//! (`cutout::CircuitBreaker::leak`): the response future holds a `cutout::Permit<'static>`.

type Shared = &'static cutout::CircuitBreaker;

fn share(breaker: cutout::CircuitBreaker) -> Shared {
    breaker.leak()
}

#[path = "support/counted.rs"]
mod counted;
#[path = "support/contract_suite.rs"]
mod suite;
