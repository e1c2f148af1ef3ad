//! What the snapshot tests share: a store in a local directory.

use hearth_snapshots::{Snapshots, StoreConfig, Tuning};

/// Snapshots to a local store in `store_dir`.
pub fn snapshots(store_dir: &std::path::Path) -> Snapshots {
    let config = StoreConfig {
        url: Some(format!("file://{}", store_dir.display())),
        ..StoreConfig::default()
    };
    let store = hearth_snapshots::open(&config, store_dir).unwrap();
    Snapshots::new(store, Tuning::default())
}
