//! Reed-Solomon repair packets (being written).
