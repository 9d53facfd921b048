{
  "targets": [
    {
      "target_name": "p11sign",
      "sources": ["p11sign.c"],
      "include_dirs": ["..", "<!(node -p \"require('path').join(require('path').dirname(require.resolve('pkcs11js/package.json')), 'includes')\")"],
      "cflags": ["-O2", "-Wall"],
      "libraries": ["-ldl"]
    }
  ]
}
