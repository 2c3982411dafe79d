//! The impairment models, one per file: what each parameter means (the serializable
//! configuration, as profiles hold it) and the runtime state that draws from it.
//!
//! * [`loss`]: none, Bernoulli, Gilbert-Elliott (per packet or per time slice), loss traces.
//! * [`outage`]: windows during which everything is lost, fixed or Poisson.
//! * [`delay`]: base delay, AR(1) jitter and queue-like delay spikes.

pub mod delay;
pub mod loss;
pub mod outage;
