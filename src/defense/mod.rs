//! How well regeneration defends: attacks run against θ_orig, the checkpoints, generated and
//! retrained models. [`threat`] states the threat model (white box, T1 leaked original, T2
//! cross-session, T3 bundle holder) and measures it on the [`populations`] a defender could
//! deploy; [`study`] runs it over G2D and every baseline. [`transfer`] is the earlier PGD
//! transfer table; [`query_attack`] runs a score-based black-box attacker (SimBA, T4) against a
//! static or rotating model. Reads the pipeline's run directory; never trains the generator.

pub mod populations;
pub mod query_attack;
pub mod study;
pub mod threat;
pub mod transfer;
