//! Loom models of the cutout core; see `run.sh`. Without `--cfg cutout_loom` this crate is empty.
