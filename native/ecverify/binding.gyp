{
  "targets": [
    {
      "target_name": "ecverify",
      "sources": ["ecverify.c"],
      "cflags": ["-O2", "-Wall", "-Wno-deprecated-declarations"]
    }
  ]
}
