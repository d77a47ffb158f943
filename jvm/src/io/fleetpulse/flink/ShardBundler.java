package io.fleetpulse.flink;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;

import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Hands records to Python in bundles, one bundle per shard, so that a Python operator is called
 * once per bundle instead of once per record (in PyFlink's thread mode each call crosses from the
 * JVM into the embedded interpreter and takes its lock).
 *
 * <p>Input rows: {@code (key STRING, value BYTES, partition INT, offset BIGINT, record_key
 * BYTES)}. Output rows: {@code (shard INT, bundle BYTES)}, where {@code shard =
 * floorMod(key.hashCode(), shards)} and the bundle is the shard's records in arrival order, each
 * encoded big-endian as {@code [partition int32][offset int64][key length int32][record key
 * bytes][value length int32][value bytes]} (a null key or value has length -1). A key's records
 * all land in one shard, so their order is kept.
 *
 * <p>The bundles are flushed, all shards at once: before a watermark is forwarded (so no record
 * falls behind a watermark that followed it upstream, and event time downstream sees the same
 * order as without bundling), before a checkpoint barrier (so nothing is held in a checkpoint
 * and the operator has no state), at the end of the input, when a shard holds {@code maxRecords},
 * and {@code flushMillis} after the first record buffered since the last flush (so a quiet stream,
 * whose watermark does not move, is not held back).
 *
 * <p>Checkpoint markers: after the flush before a checkpoint barrier, every shard gets an empty
 * bundle, the last record its keyed Python function sees from this input before the barrier. A
 * function that keeps its state in Python memory writes it back to Flink's state then, so the
 * snapshot holds every change the records ahead of the barrier made (with aligned checkpoints,
 * which the jobs configure: nothing from this input overtakes the barrier or follows the marker
 * ahead of it).
 */
public class ShardBundler extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, BoundedOneInput {

    private static final long serialVersionUID = 1L;

    /**
     * A shard's bundle is also emitted once it holds this many bytes: records may be up to the
     * broker's 1 MiB, and {@code maxRecords} of those would make a bundle of gigabytes, more than
     * a Java array holds (a task failure from input alone).
     */
    public static final int MAX_BUNDLE_BYTES = 4 << 20;

    /** The bundle a shard gets just before a checkpoint barrier: no records. */
    public static final byte[] CHECKPOINT_MARKER = new byte[0];

    private final int shards;
    private final int maxRecords;
    private final long flushMillis;

    private transient ByteArrayOutputStream[] bytes;
    private transient DataOutputStream[] outs;
    private transient int[] counts;
    private transient int buffered;
    private transient boolean timerSet;

    public ShardBundler(int shards, int maxRecords, long flushMillis) {
        if (shards < 1 || maxRecords < 1 || flushMillis < 1) {
            throw new IllegalArgumentException(
                    "shards, maxRecords and flushMillis must be positive");
        }
        this.shards = shards;
        this.maxRecords = maxRecords;
        this.flushMillis = flushMillis;
    }

    @Override
    public void open() throws Exception {
        super.open();
        bytes = new ByteArrayOutputStream[shards];
        outs = new DataOutputStream[shards];
        counts = new int[shards];
        for (int i = 0; i < shards; i++) {
            bytes[i] = new ByteArrayOutputStream(4096);
            outs[i] = new DataOutputStream(bytes[i]);
        }
    }

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
        Row row = element.getValue();
        Object key = row.getField(0);
        int shard = Math.floorMod(key == null ? 0 : key.hashCode(), shards);
        byte[] value = (byte[]) row.getField(1);
        Integer partition = (Integer) row.getField(2);
        Long offset = (Long) row.getField(3);
        byte[] recordKey = row.getArity() > 4 ? (byte[]) row.getField(4) : null;
        DataOutputStream out = outs[shard];
        out.writeInt(partition == null ? -1 : partition);
        out.writeLong(offset == null ? -1L : offset);
        writeBytes(out, recordKey);
        writeBytes(out, value);
        counts[shard]++;
        buffered++;
        if (counts[shard] >= maxRecords || bytes[shard].size() >= MAX_BUNDLE_BYTES) {
            emit(shard);
        }
        if (buffered > 0 && !timerSet) {
            timerSet = true;
            long now = getProcessingTimeService().getCurrentProcessingTime();
            getProcessingTimeService().registerTimer(now + flushMillis, time -> {
                timerSet = false;
                flushAll();
            });
        }
    }

    private static void writeBytes(DataOutputStream out, byte[] data) throws IOException {
        if (data == null) {
            out.writeInt(-1);
        } else {
            out.writeInt(data.length);
            out.write(data);
        }
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        flushAll();
        super.processWatermark(mark);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        flushAll();
        for (int shard = 0; shard < shards; shard++) {
            output.collect(new StreamRecord<>(Row.of(shard, CHECKPOINT_MARKER)));
        }
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void endInput() throws Exception {
        flushAll();
    }

    private void flushAll() throws IOException {
        if (buffered == 0) {
            return;
        }
        for (int shard = 0; shard < shards; shard++) {
            if (counts[shard] > 0) {
                emit(shard);
            }
        }
    }

    private void emit(int shard) throws IOException {
        outs[shard].flush();
        output.collect(new StreamRecord<>(Row.of(shard, bytes[shard].toByteArray())));
        buffered -= counts[shard];
        counts[shard] = 0;
        bytes[shard].reset();
    }
}
