/* The one Apple SDK header that ring's C code includes, for `cargo clippy --target
   aarch64-apple-darwin` on Linux (.ci/run, the Metal check). Nothing built with it is
   linked or run. */
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_VISION 0
#define TARGET_OS_SIMULATOR 0
