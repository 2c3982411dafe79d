//! Network impairment models (being written).
