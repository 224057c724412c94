import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Drives a broker with the Apache Kafka Java client; the Python tests read what it prints, one JSON object a line.
 *
 *   java -cp CLASSPATH MoldauScenario COMMAND bootstrap=HOST:PORT topic=T [key=value ...]
 *
 * Commands:
 *   admin      createTopics (partitions=N), then describeCluster, listTopics and describeTopics
 *   produce    sends the records on stdin, one "key TAB value TAB timestamp TAB header" a line, with acks=all
 *   consume    assign() all partitions, seek (from=beginning | offset:P:N | timestamp:T), poll expected=N records;
 *              also prints beginningOffsets, endOffsets and offsetsForTimes(timestamp=T if given)
 *   subscribe  subscribe() with group=G and poll expected=N records (needs consumer groups)
 * Client configs are passed through as producer.NAME=VALUE, consumer.NAME=VALUE or admin.NAME=VALUE.
 * Every call is bounded by deadline.ms (default 20000); any failure ends the program with exit status 1 and
 * the exception on stderr.
 */
public final class MoldauScenario {
    private final Map<String, String> args = new HashMap<>();
    private final long deadlineMs;

    private MoldauScenario(String[] argv) {
        for (int i = 1; i < argv.length; i++) {
            int eq = argv[i].indexOf('=');
            if (eq < 0) {
                throw new IllegalArgumentException("expected key=value, got " + argv[i]);
            }
            args.put(argv[i].substring(0, eq), argv[i].substring(eq + 1));
        }
        deadlineMs = Long.parseLong(args.getOrDefault("deadline.ms", "20000"));
    }

    public static void main(String[] argv) throws Exception {
        MoldauScenario scenario = new MoldauScenario(argv);
        switch (argv.length > 0 ? argv[0] : "") {
            case "admin" -> scenario.admin();
            case "produce" -> scenario.produce();
            case "consume" -> scenario.consume();
            case "subscribe" -> scenario.subscribe();
            default -> throw new IllegalArgumentException("command must be admin, produce, consume or subscribe");
        }
        System.out.flush();
        // Client threads are all closed by now, but exit explicitly so a stray one cannot keep the JVM alive.
        System.exit(0);
    }

    private String need(String key) {
        String value = args.get(key);
        if (value == null) {
            throw new IllegalArgumentException("missing argument " + key + "=...");
        }
        return value;
    }

    private Properties config(String prefix) {
        Properties props = new Properties();
        props.put("bootstrap.servers", need("bootstrap"));
        props.put("client.id", "moldau-java-" + prefix);
        // Half the deadline, so that delivery.timeout.ms (the deadline) >= linger.ms + request.timeout.ms holds.
        props.put("request.timeout.ms", String.valueOf(Math.max(1000, deadlineMs / 2)));
        props.put("default.api.timeout.ms", String.valueOf(deadlineMs));
        for (Map.Entry<String, String> e : args.entrySet()) {
            if (e.getKey().startsWith(prefix + ".")) {
                props.put(e.getKey().substring(prefix.length() + 1), e.getValue());
            }
        }
        return props;
    }

    private void admin() throws Exception {
        String topic = need("topic");
        int partitions = Integer.parseInt(args.getOrDefault("partitions", "3"));
        try (Admin admin = Admin.create(config("admin"))) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
                .all().get(deadlineMs, TimeUnit.MILLISECONDS);
            emit("created", Map.of("topic", topic, "partitions", partitions));

            DescribeClusterResult cluster = admin.describeCluster();
            List<Object> nodes = new ArrayList<>();
            for (Node node : cluster.nodes().get(deadlineMs, TimeUnit.MILLISECONDS)) {
                nodes.add(Map.of("id", node.id(), "host", node.host(), "port", node.port()));
            }
            Node controller = cluster.controller().get(deadlineMs, TimeUnit.MILLISECONDS);
            Map<String, Object> described = new TreeMap<>();
            described.put("cluster_id", cluster.clusterId().get(deadlineMs, TimeUnit.MILLISECONDS));
            described.put("controller", controller == null ? null : controller.id());
            described.put("nodes", nodes);
            emit("cluster", described);

            Collection<String> names = admin.listTopics().names().get(deadlineMs, TimeUnit.MILLISECONDS);
            emit("topics", Map.of("names", new ArrayList<>(names)));

            TopicDescription description = admin.describeTopics(List.of(topic)).allTopicNames()
                .get(deadlineMs, TimeUnit.MILLISECONDS).get(topic);
            List<Object> leaders = new ArrayList<>();
            description.partitions().forEach(p -> leaders.add(p.leader() == null ? null : p.leader().id()));
            emit("described", Map.of("topic", description.name(), "leaders", leaders));
        }
    }

    private void produce() throws Exception {
        String topic = need("topic");
        Properties props = config("producer");
        props.putIfAbsent("acks", "all");
        props.putIfAbsent("linger.ms", "5");
        props.putIfAbsent("max.block.ms", String.valueOf(deadlineMs));
        props.putIfAbsent("delivery.timeout.ms", String.valueOf(deadlineMs));
        List<Future<RecordMetadata>> pending = new ArrayList<>();
        List<String> values = new ArrayList<>();
        try (KafkaProducer<String, String> producer =
                 new KafkaProducer<>(props, new StringSerializer(), new StringSerializer())) {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                String[] f = line.split("\t", -1);
                ProducerRecord<String, String> record =
                    new ProducerRecord<>(topic, null, Long.parseLong(f[2]), f[0], f[1]);
                record.headers().add("h", f[3].getBytes(StandardCharsets.UTF_8));
                pending.add(producer.send(record));
                values.add(f[1]);
            }
            producer.flush();
            for (int i = 0; i < pending.size(); i++) {
                RecordMetadata md = pending.get(i).get(deadlineMs, TimeUnit.MILLISECONDS);
                emit("sent", Map.of("value", values.get(i), "partition", md.partition(), "offset", md.offset(),
                                    "timestamp", md.timestamp()));
            }
        }
    }

    private KafkaConsumer<String, String> newConsumer(Properties props) {
        props.putIfAbsent("auto.offset.reset", "earliest");
        return new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer());
    }

    private void consume() throws Exception {
        String topic = need("topic");
        int expected = Integer.parseInt(need("expected"));
        String from = args.getOrDefault("from", "beginning");
        try (KafkaConsumer<String, String> consumer = newConsumer(config("consumer"))) {
            List<TopicPartition> partitions = new ArrayList<>();
            consumer.partitionsFor(topic, Duration.ofMillis(deadlineMs))
                .forEach(p -> partitions.add(new TopicPartition(topic, p.partition())));
            partitions.sort((a, b) -> Integer.compare(a.partition(), b.partition()));
            emit("offsets", Map.of(
                "beginning", byPartition(consumer.beginningOffsets(partitions, Duration.ofMillis(deadlineMs))),
                "end", byPartition(consumer.endOffsets(partitions, Duration.ofMillis(deadlineMs)))));
            if (args.containsKey("timestamp")) {
                long ts = Long.parseLong(args.get("timestamp"));
                Map<TopicPartition, Long> query = new HashMap<>();
                partitions.forEach(tp -> query.put(tp, ts));
                Map<String, Object> found = new TreeMap<>();
                consumer.offsetsForTimes(query, Duration.ofMillis(deadlineMs)).forEach((tp, ot) ->
                    found.put(String.valueOf(tp.partition()), ot == null ? null : offsetAndTimestamp(ot)));
                emit("offsets_for_times", Map.of("timestamp", ts, "found", found));
            }
            if (from.startsWith("offset:")) {
                String[] f = from.split(":");
                TopicPartition tp = new TopicPartition(topic, Integer.parseInt(f[1]));
                consumer.assign(List.of(tp));
                consumer.seek(tp, Long.parseLong(f[2]));
            } else if (from.startsWith("timestamp:")) {
                long ts = Long.parseLong(from.substring("timestamp:".length()));
                consumer.assign(partitions);
                Map<TopicPartition, Long> query = new HashMap<>();
                partitions.forEach(tp -> query.put(tp, ts));
                Map<TopicPartition, OffsetAndTimestamp> found =
                    consumer.offsetsForTimes(query, Duration.ofMillis(deadlineMs));
                for (TopicPartition tp : partitions) {
                    OffsetAndTimestamp ot = found.get(tp);
                    if (ot == null) {
                        consumer.seekToEnd(List.of(tp));
                    } else {
                        consumer.seek(tp, ot.offset());
                    }
                }
            } else {
                consumer.assign(partitions);
                consumer.seekToBeginning(partitions);
            }
            pollUntil(consumer, expected);
        }
    }

    private void subscribe() throws Exception {
        Properties props = config("consumer");
        props.put("group.id", need("group"));
        try (KafkaConsumer<String, String> consumer = newConsumer(props)) {
            consumer.subscribe(List.of(need("topic")));
            pollUntil(consumer, Integer.parseInt(need("expected")));
            consumer.commitSync(Duration.ofMillis(deadlineMs));
            emit("committed", Map.of("group", need("group")));
        }
    }

    private void pollUntil(KafkaConsumer<String, String> consumer, int expected) {
        long deadline = System.currentTimeMillis() + deadlineMs;
        int received = 0;
        while (received < expected) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) {
                throw new IllegalStateException("received " + received + " of " + expected + " records in "
                                                + deadlineMs + " ms");
            }
            for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(Math.min(left, 500)))) {
                Header h = r.headers().lastHeader("h");
                Map<String, Object> fields = new TreeMap<>();
                fields.put("partition", r.partition());
                fields.put("offset", r.offset());
                fields.put("key", r.key());
                fields.put("value", r.value());
                fields.put("timestamp", r.timestamp());
                fields.put("timestamp_type", r.timestampType().name);
                fields.put("header", h == null ? null : new String(h.value(), StandardCharsets.UTF_8));
                fields.put("leader_epoch", r.leaderEpoch().orElse(-1));
                emit("record", fields);
                received++;
            }
        }
    }

    private static Map<String, Object> offsetAndTimestamp(OffsetAndTimestamp ot) {
        return Map.of("offset", ot.offset(), "timestamp", ot.timestamp());
    }

    private static Map<String, Object> byPartition(Map<TopicPartition, Long> offsets) {
        Map<String, Object> out = new TreeMap<>();
        offsets.forEach((tp, offset) -> out.put(String.valueOf(tp.partition()), offset));
        return out;
    }

    private static void emit(String event, Map<String, ?> fields) {
        Map<String, Object> all = new TreeMap<>(fields);
        all.put("event", event);
        System.out.println(json(all));
    }

    private static String json(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof Number || value instanceof Boolean) {
            return value.toString();
        }
        if (value instanceof Map<?, ?> map) {
            StringBuilder sb = new StringBuilder("{");
            map.forEach((k, v) -> sb.append(sb.length() > 1 ? "," : "").append(json(k.toString()))
                .append(':').append(json(v)));
            return sb.append('}').toString();
        }
        if (value instanceof Collection<?> list) {
            StringBuilder sb = new StringBuilder("[");
            list.forEach(v -> sb.append(sb.length() > 1 ? "," : "").append(json(v)));
            return sb.append(']').toString();
        }
        StringBuilder sb = new StringBuilder("\"");
        for (char c : value.toString().toCharArray()) {
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                default -> sb.append(c < 0x20 ? String.format("\\u%04x", (int) c) : String.valueOf(c));
            }
        }
        return sb.append('"').toString();
    }
}
