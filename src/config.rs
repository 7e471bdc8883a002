//! The pipeline file.
