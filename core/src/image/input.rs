//! An image a job reads: pixels copied from the host at submit, or the host's GPU image, read
//! by the worker when the job starts.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use super::RgbImage;
use crate::error::Result;
use crate::interop::GpuImage;

/// How long the worker waits for a GPU image's semaphore before failing the job.
pub const GPU_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A job's input image.
#[derive(Clone)]
pub enum ImageInput {
    Pixels(RgbImage),
    /// Read when the job starts, once the image's semaphore reaches `wait_value` (timeline
    /// semaphores and fences; a binary semaphore's pending signal otherwise).
    Gpu {
        image: Arc<GpuImage>,
        wait_value: u64,
    },
}

impl ImageInput {
    /// Width and height in pixels.
    pub fn size(&self) -> (usize, usize) {
        match self {
            ImageInput::Pixels(p) => (p.width, p.height),
            ImageInput::Gpu { image, .. } => (image.desc().width, image.desc().height),
        }
    }

    /// The pixels, read from the GPU now for a GPU image (within [`GPU_READ_TIMEOUT`]).
    pub fn pixels(&self) -> Result<Cow<'_, RgbImage>> {
        match self {
            ImageInput::Pixels(p) => Ok(Cow::Borrowed(p)),
            ImageInput::Gpu { image, wait_value } => {
                Ok(Cow::Owned(image.read(*wait_value, GPU_READ_TIMEOUT)?))
            }
        }
    }
}

impl From<RgbImage> for ImageInput {
    fn from(p: RgbImage) -> Self {
        ImageInput::Pixels(p)
    }
}

impl std::fmt::Debug for ImageInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (w, h) = self.size();
        match self {
            ImageInput::Pixels(_) => write!(f, "Pixels({w}x{h})"),
            ImageInput::Gpu { wait_value, .. } => write!(f, "Gpu({w}x{h}, wait {wait_value})"),
        }
    }
}
