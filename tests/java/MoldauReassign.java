// The Apache Kafka Java Admin client's leader election and reassignment calls, for
// tests/cluster/test_reassignment_java.py: one command per run, one JSON object per line on stdout.
//   reassign bootstrap=... topic=... partition=N replicas=1,2|cancel
//   list     bootstrap=...
//   elect    bootstrap=... topic=... partition=N type=PREFERRED|UNCLEAN
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.TopicPartition;

public class MoldauReassign {
    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        for (int i = 1; i < argv.length; i++) {
            String[] kv = argv[i].split("=", 2);
            args.put(kv[0], kv[1]);
        }
        Properties props = new Properties();
        props.put("bootstrap.servers", args.get("bootstrap"));
        props.put("request.timeout.ms", "20000");
        props.put("default.api.timeout.ms", "30000");
        try (Admin admin = Admin.create(props)) {
            switch (argv[0]) {
                case "reassign": {
                    TopicPartition tp = partition(args);
                    String replicas = args.get("replicas");
                    Optional<NewPartitionReassignment> target = replicas.equals("cancel") ? Optional.empty()
                        : Optional.of(new NewPartitionReassignment(ids(replicas)));
                    String error = null;
                    try {
                        admin.alterPartitionReassignments(Map.of(tp, target)).all().get();
                    } catch (ExecutionException e) {
                        error = e.getCause().getClass().getSimpleName();
                    }
                    System.out.println("{\"event\":\"reassign\",\"error\":" + quoted(error) + "}");
                    break;
                }
                case "list": {
                    Map<TopicPartition, PartitionReassignment> ongoing =
                        admin.listPartitionReassignments().reassignments().get();
                    for (Map.Entry<TopicPartition, PartitionReassignment> e : ongoing.entrySet()) {
                        PartitionReassignment r = e.getValue();
                        System.out.println("{\"event\":\"ongoing\",\"topic\":\"" + e.getKey().topic()
                            + "\",\"partition\":" + e.getKey().partition() + ",\"replicas\":" + r.replicas()
                            + ",\"adding\":" + r.addingReplicas() + ",\"removing\":" + r.removingReplicas() + "}");
                    }
                    System.out.println("{\"event\":\"listed\",\"count\":" + ongoing.size() + "}");
                    break;
                }
                case "elect": {
                    TopicPartition tp = partition(args);
                    Map<TopicPartition, Optional<Throwable>> results = admin.electLeaders(
                        ElectionType.valueOf(args.get("type")), Set.of(tp)).partitions().get();
                    Optional<Throwable> error = results.get(tp);
                    System.out.println("{\"event\":\"elect\",\"error\":"
                        + quoted(error.map(t -> t.getClass().getSimpleName()).orElse(null)) + "}");
                    break;
                }
                default:
                    throw new IllegalArgumentException("unknown command " + argv[0]);
            }
        }
    }

    static TopicPartition partition(Map<String, String> args) {
        return new TopicPartition(args.get("topic"), Integer.parseInt(args.get("partition")));
    }

    static List<Integer> ids(String csv) {
        List<Integer> ids = new ArrayList<>();
        for (String id : csv.split(",")) ids.add(Integer.parseInt(id.trim()));
        return ids;
    }

    static String quoted(String s) {
        return s == null ? "null" : "\"" + s + "\"";
    }
}
