{
  "targets": [
    {
      "target_name": "vpngw_native",
      "sources": ["src/addon.c", "src/netdev.c", "src/io.c", "src/steer.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
