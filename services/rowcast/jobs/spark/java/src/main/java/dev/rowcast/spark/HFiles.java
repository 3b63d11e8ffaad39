package dev.rowcast.spark;

import java.io.IOException;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Iterator;
import java.util.Map;
import java.net.URI;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hbase.Cell;
import org.apache.hadoop.hbase.HBaseConfiguration;
import org.apache.hadoop.hbase.KeyValue;
import org.apache.hadoop.hbase.TableName;
import org.apache.hadoop.hbase.client.Connection;
import org.apache.hadoop.hbase.client.ConnectionFactory;
import org.apache.hadoop.hbase.client.RegionLocator;
import org.apache.hadoop.hbase.client.Table;
import org.apache.hadoop.hbase.io.ImmutableBytesWritable;
import org.apache.hadoop.hbase.mapreduce.HFileOutputFormat2;
import org.apache.hadoop.hbase.tool.BulkLoadHFiles;
import org.apache.hadoop.hbase.util.Bytes;
import org.apache.hadoop.mapreduce.Job;
import org.apache.spark.Partitioner;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.function.PairFlatMapFunction;
import org.apache.spark.api.java.function.PairFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import scala.Tuple2;

/**
 * Writes a version table's cells as HFiles and bulk-loads them: the JVM half of rowcast's Spark
 * engine (rowcast.jobs.spark). Python scores the grid and builds every byte (keys and values,
 * rowcast.core.keys); this class only orders them by the table's regions and hands them to
 * HBase's own writer (HFileOutputFormat2, with the table's column-family settings) and loader
 * (BulkLoadHFiles). Nothing here knows the key layout.
 */
public final class HFiles {
  private HFiles() {}

  /** An HBase client configuration: the defaults plus the given properties (ZooKeeper quorum). */
  static Configuration hbaseConf(Map<String, String> props) {
    Configuration conf = HBaseConfiguration.create();
    for (Map.Entry<String, String> e : props.entrySet()) {
      conf.set(e.getKey(), e.getValue());
    }
    return conf;
  }

  /** The start keys of the table's regions, in order (the first is empty). */
  public static byte[][] startKeys(Map<String, String> props, String table) throws IOException {
    try (Connection c = ConnectionFactory.createConnection(hbaseConf(props));
        RegionLocator l = c.getRegionLocator(TableName.valueOf(table))) {
      return l.getStartKeys();
    }
  }

  /**
   * Writes HFiles of `cells` (columns: key binary, output binary) under `dir`, one or more per
   * region: two cells a row, family:outputQualifier = the output bytes, family:versionQualifier
   * = versionValue, both at `timestamp`. Returns the number of regions the table had.
   */
  public static int write(
      Dataset<Row> cells,
      Map<String, String> props,
      String table,
      String dir,
      String family,
      String outputQualifier,
      String versionQualifier,
      long timestamp,
      byte[] versionValue)
      throws IOException {
    Configuration conf = hbaseConf(props);
    TableName name = TableName.valueOf(table);
    Job job = Job.getInstance(conf);
    byte[][] starts;
    try (Connection c = ConnectionFactory.createConnection(conf);
        Table t = c.getTable(name);
        RegionLocator l = c.getRegionLocator(name)) {
      starts = l.getStartKeys();
      // Compression, bloom filter, block size and encoding of each family, from the table.
      HFileOutputFormat2.configureIncrementalLoadMap(job, t.getDescriptor());
    }
    Configuration out = job.getConfiguration();
    out.set("hbase.mapreduce.hfileoutputformat.table.name", name.getNameAsString());
    // Locality needs the region servers' hosts; the loader moves files wherever they are.
    out.setBoolean(HFileOutputFormat2.LOCALITY_SENSITIVE_CONF_KEY, false);
    JavaPairRDD<byte[], byte[]> sorted =
        cells
            .javaRDD()
            .mapToPair(new ToPair())
            .repartitionAndSortWithinPartitions(new RegionPartitioner(starts), new KeyOrder());
    JavaPairRDD<ImmutableBytesWritable, Cell> kvs =
        sorted.flatMapToPair(
            new ToCells(
                Bytes.toBytes(family),
                Bytes.toBytes(outputQualifier),
                Bytes.toBytes(versionQualifier),
                timestamp,
                versionValue));
    kvs.saveAsNewAPIHadoopFile(
        dir, ImmutableBytesWritable.class, Cell.class, HFileOutputFormat2.class, out);
    return starts.length;
  }

  /** Hands the HFiles under `dir` (dir/family/file) to the table's region servers. */
  public static int bulkLoad(Map<String, String> props, String table, String dir)
      throws IOException {
    Map<BulkLoadHFiles.LoadQueueItem, ByteBuffer> loaded =
        BulkLoadHFiles.create(hbaseConf(props)).bulkLoad(TableName.valueOf(table), new Path(dir));
    return loaded.size();
  }

  /**
   * Removes the staging directory `dir` (a URI: hdfs://..., file://...) and everything under
   * it; true if it existed. The driver calls it when a run ends, the ModelService through
   * {@link #main} when the driver could not (killed, or never started its JVM).
   */
  public static boolean remove(Map<String, String> props, String dir) throws IOException {
    Path path = new Path(dir);
    FileSystem fs = FileSystem.get(URI.create(dir), hbaseConf(props));
    return fs.delete(path, true);
  }

  /** {@code java -cp ... dev.rowcast.spark.HFiles remove URI}: exit 0 once URI is gone. */
  public static void main(String[] args) throws IOException {
    if (args.length != 2 || !"remove".equals(args[0])) {
      System.err.println("usage: HFiles remove DIR_URI");
      System.exit(2);
    }
    boolean existed = remove(Map.of(), args[1]);
    System.out.println(existed ? "removed " + args[1] : "absent " + args[1]);
  }

  static final class ToPair implements PairFunction<Row, byte[], byte[]> {
    @Override
    public Tuple2<byte[], byte[]> call(Row row) {
      return new Tuple2<>((byte[]) row.get(0), (byte[]) row.get(1));
    }
  }

  /** HBase's key order: unsigned lexicographic bytes. */
  static final class KeyOrder implements Comparator<byte[]>, Serializable {
    private static final long serialVersionUID = 1L;

    @Override
    public int compare(byte[] a, byte[] b) {
      return Bytes.compareTo(a, b);
    }
  }

  /** Partition i holds exactly the keys of region i (start key inclusive). */
  static final class RegionPartitioner extends Partitioner {
    private static final long serialVersionUID = 1L;
    private final byte[][] starts;

    RegionPartitioner(byte[][] starts) {
      this.starts = Arrays.copyOf(starts, starts.length);
    }

    @Override
    public int numPartitions() {
      return starts.length;
    }

    @Override
    public int getPartition(Object key) {
      byte[] k = (byte[]) key;
      int lo = 0;
      int hi = starts.length - 1;
      while (lo < hi) { // the last start key <= k
        int mid = (lo + hi + 1) >>> 1;
        if (Bytes.compareTo(starts[mid], k) <= 0) {
          lo = mid;
        } else {
          hi = mid - 1;
        }
      }
      return lo;
    }
  }

  static final class ToCells implements PairFlatMapFunction<Tuple2<byte[], byte[]>, ImmutableBytesWritable, Cell> {
    private static final long serialVersionUID = 1L;
    private final byte[] family;
    private final byte[] outputQualifier;
    private final byte[] versionQualifier;
    private final long timestamp;
    private final byte[] versionValue;

    ToCells(byte[] family, byte[] oq, byte[] vq, long timestamp, byte[] versionValue) {
      this.family = family;
      this.outputQualifier = oq;
      this.versionQualifier = vq;
      this.timestamp = timestamp;
      this.versionValue = versionValue;
    }

    @Override
    public Iterator<Tuple2<ImmutableBytesWritable, Cell>> call(Tuple2<byte[], byte[]> row) {
      byte[] key = row._1();
      ImmutableBytesWritable k = new ImmutableBytesWritable(key);
      // Qualifiers in byte order within the row, as an HFile requires (asserted in Python).
      Cell output =
          new KeyValue(key, family, outputQualifier, timestamp, KeyValue.Type.Put, row._2());
      Cell version =
          new KeyValue(key, family, versionQualifier, timestamp, KeyValue.Type.Put, versionValue);
      return Arrays.asList(new Tuple2<>(k, output), new Tuple2<>(k, version)).iterator();
    }
  }
}
