//! The bus holds accepted events until each function that wants one has run and its outputs are
//! written (DESIGN.md step 2). The embedded implementation keeps them in redb, so a crash or a
//! restart delivers again everything that was not acknowledged.

mod embedded;

pub use embedded::{Bus, BusError, DeadLetter, Delivery};
