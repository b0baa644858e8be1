/* Input for bindgen in build.rs: the libvpx encoder API and VP8's encoder controls. */
#include <vpx/vpx_encoder.h>
#include <vpx/vp8cx.h>
