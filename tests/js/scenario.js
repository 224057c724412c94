#!/usr/bin/env node
'use strict'
// Runs a client-compatibility job against a broker with kafkajs, for tests/integration/test_kafkajs.py.
//
// The job is JSON, on argv[2] or stdin:
//   {"brokers": ["127.0.0.1:9092"], "topic": "t", "deadlineMs": 25000, "steps": [
//     {"op": "createTopic", "partitions": 3},
//     {"op": "produce", "compression": "zstd", "chunk": 40,
//      "records": [{"key": "k", "value": "v", "timestamp": 1700000000000, "header": "h-0"}]},
//     {"op": "offsets"},                                   // admin.fetchTopicOffsets
//     {"op": "offsetsByTimestamp", "timestamp": 1700000060000},
//     {"op": "read", "from": "beginning" | {"offsets": {"0": 5}} | {"timestamp": 1700000060000}},
//     {"op": "consumeGroup", "groupId": "g", "expected": 120}
//   ]}
// Every result is one JSON line on stdout, {"step": i, "op": ..., ...}; kafkajs's own logs go to
// stderr. A failing step prints {"step": i, "op": ..., "error": {...}} and exits 1; running out of
// deadlineMs prints {"error": {"name": "Deadline", ...}} and exits 2.

const { Kafka, Partitioners, logLevel } = require('kafkajs')
const Batch = require('kafkajs/src/consumer/batch')
const { registerCodecs, COMPRESSION_BY_NAME } = require('./codecs')

const READ_COMMITTED = 1 // kafkajs's consumer default isolation level
const PARTITION_MAX_BYTES = 1024 * 1024
const FETCH_MAX_WAIT_MS = 100

function emit(line) {
  process.stdout.write(JSON.stringify(line) + '\n')
}

function stderrLogCreator() {
  return ({ namespace, label, log }) => {
    process.stderr.write(JSON.stringify({ level: label, namespace, ...log }) + '\n')
  }
}

function describeError(e) {
  return { name: e.name, message: e.message, type: e.type, code: e.code, retriable: e.retriable }
}

function asRecord(partition, message) {
  const header = message.headers && message.headers.h
  return {
    partition,
    offset: Number(message.offset),
    key: message.key === null ? null : message.key.toString(),
    value: message.value === null ? null : message.value.toString(),
    timestamp: Number(message.timestamp),
    header: header === undefined ? null : header.toString(),
  }
}

// kafkajs 2.2.4 has no public group-less consumer (no assign()): every Consumer joins a group.
// Its Kafka object builds its clusters through a private factory; borrowing it gives a client
// configured exactly like the consumer's own (same Fetch version negotiation, record batch
// decoder and codecs), minus the group membership.
function clusterWithoutGroup(kafka) {
  const factory = Object.getOwnPropertySymbols(kafka).find(
    symbol => symbol.description === 'private:Kafka:createCluster'
  )
  if (factory === undefined) throw new Error('kafkajs internals changed: no private cluster factory')
  return kafka[factory]({ allowAutoTopicCreation: false, isolationLevel: READ_COMMITTED })
}

async function startOffsets(admin, topic, from) {
  if (from === 'beginning') {
    const offsets = await admin.fetchTopicOffsets(topic)
    return new Map(offsets.map(({ partition, low }) => [partition, BigInt(low)]))
  }
  if (from.timestamp !== undefined) {
    const offsets = await admin.fetchTopicOffsetsByTimestamp(topic, from.timestamp)
    return new Map(offsets.map(({ partition, offset }) => [partition, BigInt(offset)]))
  }
  return new Map(Object.entries(from.offsets).map(([p, offset]) => [Number(p), BigInt(offset)]))
}

// Fetches each partition from its start offset up to the high watermark the broker reports.
async function read(kafka, admin, topic, from, onRecord) {
  const positions = await startOffsets(admin, topic, from)
  const highWatermarks = new Map()
  const caughtUp = p => highWatermarks.has(p) && positions.get(p) >= highWatermarks.get(p)
  const cluster = clusterWithoutGroup(kafka)
  await cluster.connect()
  try {
    await cluster.addTargetTopic(topic)
    for (;;) {
      const pending = [...positions.keys()].filter(p => !caughtUp(p))
      if (pending.length === 0) return
      const byLeader = cluster.findLeaderForPartitions(topic, pending)
      for (const [nodeId, partitions] of Object.entries(byLeader)) {
        const broker = await cluster.findBroker({ nodeId })
        const { responses } = await broker.fetch({
          maxWaitTime: FETCH_MAX_WAIT_MS,
          minBytes: 1,
          isolationLevel: READ_COMMITTED,
          topics: [
            {
              topic,
              partitions: partitions.map(partition => ({
                partition,
                fetchOffset: positions.get(partition).toString(),
                maxBytes: PARTITION_MAX_BYTES,
              })),
            },
          ],
        })
        for (const { partitions: fetched } of responses) {
          for (const data of fetched) {
            const batch = new Batch(topic, positions.get(data.partition).toString(), data)
            highWatermarks.set(data.partition, BigInt(data.highWatermark))
            batch.messages.forEach(message => onRecord(asRecord(data.partition, message)))
            if (!batch.isEmptyIncludingFiltered()) {
              positions.set(data.partition, BigInt(batch.lastOffset()) + 1n)
            }
          }
        }
      }
    }
  } finally {
    await cluster.disconnect()
  }
}

async function consumeGroup(kafka, topic, { groupId, expected }, onRecord) {
  const consumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    // Few attempts and no restart: a broker without group support should fail this step, not stall it.
    retry: { retries: 1, initialRetryTime: 100, restartOnFailure: async () => false },
  })
  try {
    await new Promise((resolve, reject) => {
      let received = 0
      consumer.on(consumer.events.CRASH, ({ payload }) => reject(payload.error))
      consumer
        .connect()
        .then(() => consumer.subscribe({ topic, fromBeginning: true }))
        .then(() =>
          consumer.run({
            eachMessage: async ({ partition, message }) => {
              onRecord(asRecord(partition, message))
              received += 1
              if (received >= expected) resolve()
            },
          })
        )
        .catch(reject)
    })
  } finally {
    await consumer.disconnect()
  }
}

async function produce(kafka, topic, { compression, records, chunk = records.length }, onResult) {
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner, // murmur2, as Kafka's Java client
    allowAutoTopicCreation: false,
  })
  await producer.connect()
  try {
    for (let start = 0; start < records.length; start += chunk) {
      const results = await producer.send({
        topic,
        acks: -1,
        compression: COMPRESSION_BY_NAME[compression],
        messages: records.slice(start, start + chunk).map(r => ({
          key: r.key,
          value: r.value,
          timestamp: String(r.timestamp),
          headers: { h: r.header },
        })),
      })
      results.forEach(onResult)
    }
  } finally {
    await producer.disconnect()
  }
}

async function runStep(kafka, admin, topic, step, out) {
  switch (step.op) {
    case 'createTopic':
      return out({
        created: await admin.createTopics({
          topics: [{ topic, numPartitions: step.partitions, replicationFactor: 1 }],
          waitForLeaders: true,
        }),
      })
    case 'produce':
      return produce(kafka, topic, step, result => out({ result }))
    case 'offsets':
      return out({ result: await admin.fetchTopicOffsets(topic) })
    case 'offsetsByTimestamp':
      return out({ result: await admin.fetchTopicOffsetsByTimestamp(topic, step.timestamp) })
    case 'read':
      return read(kafka, admin, topic, step.from, record => out({ record }))
    case 'consumeGroup':
      return consumeGroup(kafka, topic, step, record => out({ record }))
    default:
      throw new Error(`unknown step op ${JSON.stringify(step.op)}; expected one of createTopic, ` +
        'produce, offsets, offsetsByTimestamp, read, consumeGroup')
  }
}

async function main(job) {
  await registerCodecs()
  const kafka = new Kafka({
    clientId: 'moldau-kafkajs-test',
    brokers: job.brokers,
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.WARN,
    logCreator: stderrLogCreator,
  })
  const admin = kafka.admin()
  await admin.connect()
  try {
    for (const [index, step] of job.steps.entries()) {
      const out = fields => emit({ step: index, op: step.op, ...fields })
      try {
        await runStep(kafka, admin, job.topic, step, out)
      } catch (e) {
        out({ error: describeError(e) })
        return 1
      }
      out({ done: true })
    }
    return 0
  } finally {
    await admin.disconnect()
  }
}

function readJob() {
  const text = process.argv[2] !== undefined ? process.argv[2] : require('fs').readFileSync(0, 'utf8')
  return JSON.parse(text)
}

const job = readJob()
setTimeout(() => {
  emit({ error: { name: 'Deadline', message: `job not finished within ${job.deadlineMs} ms` } })
  process.exit(2)
}, job.deadlineMs || 25000)
main(job).then(
  code => process.exit(code),
  e => {
    emit({ error: describeError(e) })
    process.exit(1)
  }
)
