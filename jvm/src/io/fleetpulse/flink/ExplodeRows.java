package io.fleetpulse.flink;

import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Spreads a batch of rows, sent column by column, into one record per row, each with the
 * batch's timestamp.
 *
 * <p>A Python operator in PyFlink's thread mode pays a crossing into the JVM for every record it
 * emits to a side output, and the bundled tracking job emits many per call (an alert for every
 * truck a timer finds offline). It emits one batch per call and kind instead, and this operator
 * spreads it out in the JVM.
 *
 * <p>Input: a row whose fields are arrays of equal length, one per column (columns, not an array
 * of rows: PyFlink's converter reuses one Row object for every element of a row array). Output:
 * for each index i, the row of the columns' i-th elements. A null batch is skipped; arrays of
 * unequal length are a bug upstream and fail the task. Stateless.
 */
public class ExplodeRows extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row> {

    private static final long serialVersionUID = 1L;

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
        Row batch = element.getValue();
        if (batch == null) {
            return;
        }
        int arity = batch.getArity();
        Object[][] columns = new Object[arity][];
        for (int c = 0; c < arity; c++) {
            columns[c] = (Object[]) batch.getField(c);
            if (columns[c] == null || columns[c].length != columns[0].length) {
                throw new IllegalArgumentException(
                        "a batch's columns must be arrays of one length; column " + c + " is not");
            }
        }
        int rows = arity == 0 ? 0 : columns[0].length;
        for (int i = 0; i < rows; i++) {
            Row row = new Row(arity);
            for (int c = 0; c < arity; c++) {
                row.setField(c, columns[c][i]);
            }
            output.collect(element.hasTimestamp()
                    ? new StreamRecord<>(row, element.getTimestamp())
                    : new StreamRecord<>(row));
        }
    }
}
