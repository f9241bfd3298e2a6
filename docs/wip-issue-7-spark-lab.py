import time, duckdb
from pyspark.sql import SparkSession
s = SparkSession.builder.master("local[*]").appName("lab").config("spark.ui.enabled","false").config("spark.sql.session.timeZone","UTC").getOrCreate()
s.sparkContext.setLogLevel("ERROR")
s.read.parquet("/tmp/spark_lab/clean.parquet").createOrReplaceTempView("clean_transactions")
sql = open("/tmp/spark_lab/features_spark.sql").read()
t = time.time()
try:
    df = s.sql(sql)
    df.write.mode("overwrite").parquet("/tmp/spark_lab/spark_features")
    print("spark ok", time.time() - t)
except Exception as e:
    print("ERR", str(e)[:1500])
s.stop()
