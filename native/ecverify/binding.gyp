{
  "targets": [
    {
      "target_name": "ecverify",
      "sources": ["ecverify.c"],
      "include_dirs": [".."],
      "cflags": ["-O2", "-Wall", "-Wno-deprecated-declarations"]
    }
  ]
}
