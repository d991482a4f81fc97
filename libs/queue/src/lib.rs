//! etx-queue
