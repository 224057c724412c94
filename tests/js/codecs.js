'use strict'
// Registers the compression codecs kafkajs leaves to plugins (it ships gzip only).
//
// snappy: kafkajs-snappy (pure JS, reads both raw and xerial-framed snappy, as Kafka's Java client writes).
// lz4:    kafkajs-lz4 (LZ4 frame format, KIP-57), compiled by node-gyp from its npm tarball.
// zstd:   @kafkajs/zstd does not build here (its bundled zstd binding fails to compile against
//         Node 20's headers), so a small codec: compression by zstd compiled to wasm, decompression
//         by fzstd (pure JS), which also reads frames without a content size (Java's zstd-jni
//         streams write those).

const { CompressionTypes, CompressionCodecs } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')
const zstdWasm = require('@bokuweb/zstd-wasm')
const fzstd = require('fzstd')

const ZSTD_LEVEL = 3 // zstd's own default level, and Kafka's (compression.zstd.level)

function zstdCodec() {
  return {
    async compress(encoder) {
      return Buffer.from(zstdWasm.compress(encoder.buffer, ZSTD_LEVEL))
    },
    async decompress(buffer) {
      return Buffer.from(fzstd.decompress(buffer))
    },
  }
}

async function registerCodecs() {
  await zstdWasm.init() // loads the wasm module; compress() is synchronous after this
  CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
  CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
  CompressionCodecs[CompressionTypes.ZSTD] = zstdCodec
}

const COMPRESSION_BY_NAME = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}

module.exports = { registerCodecs, COMPRESSION_BY_NAME }
