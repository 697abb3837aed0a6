//! docker/ and the base-image bootstrap script, compiled in by build.rs.

use runbox_sandbox::image::ImageSource;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/sandbox_context.rs"));
}

pub fn image_source() -> ImageSource {
    ImageSource {
        context: generated::SANDBOX_CONTEXT,
        context_hash: generated::SANDBOX_CONTEXT_HASH,
        bootstrap_script: generated::BOOTSTRAP_BASE_IMAGE_SCRIPT,
    }
}
