//! Keeps the image catalog fresh from each host's image events.

use crate::hosts::Host;
use crate::service::images::Catalog;
use futures::{FutureExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use wm_backend::BackendError;

/// Follows one host's image events and refreshes its part of the catalog on each, until
/// stopped; reconnects after the host goes away.
pub(super) async fn follow(catalog: Arc<Catalog>, host: Arc<Host>) {
    loop {
        let events = if host.usable() {
            host.backend.image_events().await
        } else {
            Err(BackendError::Unavailable("host is down".into()))
        };
        match events {
            Ok(mut events) => {
                let _ = catalog.refresh_host(&host).await;
                while let Some(event) = events.next().await {
                    if event.is_err() {
                        break;
                    }
                    // One build or pull sends a burst of events; gather it into one read.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    while let Some(Some(_)) = events.next().now_or_never() {}
                    if let Err(e) = catalog.refresh_host(&host).await {
                        tracing::debug!(error = %e, "catalog refresh failed");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "no image events; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
