package io.fleetpulse.flink;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.flink.kafka.shaded.org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.flink.metrics.Counter;
import org.apache.flink.types.Row;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes dead letters to Kafka, and never fails the task that writes them (the contract: "writing
 * a dead letter never fails the reader that writes it").
 *
 * <p>Flink's own Kafka sink fails the task when a record cannot be sent, and a restored task reads
 * the same record again, so one dead letter Kafka refuses (too large for the topic, say) would stop
 * the job for ever. This sink sends through a Kafka producer of its own: a send that fails is
 * counted ({@code dlq_write_failures}, and {@code dlq_written} for those acknowledged) and logged
 * with the source topic, partition and offset the dead letter names, and reading goes on.
 *
 * <p>At least once: {@link #flush} runs before every checkpoint barrier passes (and at the end of
 * the input) and waits until Kafka has acknowledged, or finally refused, every dead letter sent
 * before it, so a checkpoint never holds the offset of a record whose dead letter may still be
 * lost in a crash.
 *
 * <p>Input rows: {@code (key STRING, value STRING)}, the dead letter's Kafka key (its source
 * topic) and its JSON, which fleetpulse bounds (udfs.models.DeadLetter) below the producer's
 * {@code max.request.size}.
 */
public class DeadLetterSink implements Sink<Row> {

    private static final long serialVersionUID = 1L;

    private final String topic;
    private final HashMap<String, String> properties;

    /**
     * @param topic the dead-letter topic
     * @param properties Kafka producer properties ({@code bootstrap.servers} at least); ours are
     *     defaults that these override
     */
    public DeadLetterSink(String topic, Map<String, String> properties) {
        this.topic = topic;
        this.properties = new HashMap<>(properties);
    }

    @Override
    public SinkWriter<Row> createWriter(WriterInitContext context) throws IOException {
        Properties props = new Properties();
        props.put("acks", "all");
        props.put("linger.ms", "5");
        props.put("delivery.timeout.ms", "120000");
        // A send waits at most this long for the topic's metadata or buffer space (Kafka's
        // default, 60 s per record, would stall the task past its checkpoints when the
        // dead-letter topic is missing); see Writer#PAUSE_MS.
        props.put("max.block.ms", "5000");
        props.putAll(properties);
        return new Writer(
                topic,
                props,
                context.metricGroup().addGroup("fleetpulse").counter("dlq_write_failures"),
                context.metricGroup().addGroup("fleetpulse").counter("dlq_written"));
    }

    /** One producer per subtask; failures are counted and logged from its callbacks. */
    static final class Writer implements SinkWriter<Row> {

        private static final Logger LOG = LoggerFactory.getLogger(DeadLetterSink.class);
        private static final Pattern PARTITION = Pattern.compile("\"partition\":(-?\\d+)");
        private static final Pattern OFFSET = Pattern.compile("\"offset\":(-?\\d+)");

        /**
         * After a send that timed out waiting (the topic is missing, the broker unreachable),
         * dead letters are counted and logged as not written for this long instead of each
         * blocking the task for {@code max.block.ms}.
         */
        static final long PAUSE_MS = 30_000;

        private final String topic;
        private final KafkaProducer<byte[], byte[]> producer;
        private volatile long pausedUntil;
        private final Counter failures;
        private final Counter written;

        Writer(String topic, Properties props, Counter failures, Counter written) {
            this.topic = topic;
            this.producer =
                    new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer());
            this.failures = failures;
            this.written = written;
        }

        @Override
        public void write(Row row, Context context) {
            String key = (String) row.getField(0);
            String value = (String) row.getField(1);
            if (value == null) {
                return;
            }
            if (System.currentTimeMillis() < pausedUntil) {
                failed(key, value, new IllegalStateException(
                        "not sent: a send to " + topic + " timed out less than "
                                + PAUSE_MS / 1000 + " s ago"));
                return;
            }
            try {
                producer.send(
                        new ProducerRecord<>(
                                topic,
                                key == null ? null : key.getBytes(StandardCharsets.UTF_8),
                                value.getBytes(StandardCharsets.UTF_8)),
                        (metadata, error) -> {
                            if (error == null) {
                                written.inc();
                            } else {
                                failed(key, value, error);
                            }
                        });
            } catch (RuntimeException error) {
                failed(key, value, error);
            }
        }

        private void failed(String key, String value, Exception error) {
            if (error instanceof org.apache.flink.kafka.shaded.org.apache.kafka.common.errors
                    .TimeoutException) {
                pausedUntil = System.currentTimeMillis() + PAUSE_MS;
            }
            failures.inc();
            LOG.error(
                    "dead letter of {} partition {} offset {} ({} bytes) not written to {}: {}",
                    key,
                    field(PARTITION, value),
                    field(OFFSET, value),
                    value.length(),
                    topic,
                    error.toString());
        }

        private static String field(Pattern pattern, String json) {
            Matcher m = pattern.matcher(json);
            return m.find() ? m.group(1) : "?";
        }

        @Override
        public void flush(boolean endOfInput) {
            producer.flush();
        }

        @Override
        public void close() {
            producer.close(Duration.ofSeconds(10));
        }
    }
}
