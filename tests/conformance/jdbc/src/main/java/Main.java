import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.util.Arrays;
import java.util.Properties;

/**
 * Uses the embedded ClickHouse server the way a JDBC tool does and prints one
 * {@code key=value} line per observation, for the Python test to check.
 *
 * <p>Arguments: JDBC URL, user, password, then driver properties as {@code key=value}
 * (none: the driver's defaults).
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        for (int i = 3; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            props.setProperty(kv[0], kv[1]);
        }
        try (Connection conn = DriverManager.getConnection(args[0], props);
                Statement st = conn.createStatement()) {
            print("version", one(st, "SELECT version()"));
            st.execute("CREATE TABLE jdbc_rows (id UInt32, name String, at DateTime('Asia/Shanghai'))"
                    + " ENGINE = MergeTree ORDER BY id");
            try (PreparedStatement ps =
                    conn.prepareStatement("INSERT INTO jdbc_rows (id, name, at) VALUES (?, ?, ?)")) {
                for (int i = 0; i < 5000; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "name-" + i);
                    ps.setTimestamp(3, new Timestamp(1_700_000_000_000L + i * 1000L));
                    ps.addBatch();
                }
                print("inserted", Arrays.stream(ps.executeBatch()).sum());
            }
            print("count", one(st, "SELECT count() FROM jdbc_rows"));
            print("id_sum", one(st, "SELECT sum(id) FROM jdbc_rows"));
            print("name_7", one(st, "SELECT name FROM jdbc_rows WHERE id = 7"));
            print("epoch_0", one(st, "SELECT toUnixTimestamp(at) FROM jdbc_rows WHERE id = 0"));
            try (ResultSet rs = st.executeQuery("SELECT at FROM jdbc_rows LIMIT 1")) {
                print("at_type", rs.getMetaData().getColumnTypeName(1));
            }
            // a result of many compressed blocks
            try (ResultSet rs =
                    st.executeQuery("SELECT number, toString(number) FROM numbers(300000)")) {
                long rows = 0;
                long sum = 0;
                while (rs.next()) {
                    rows++;
                    sum += rs.getLong(1);
                    if (!rs.getString(2).equals(Long.toString(rs.getLong(1)))) {
                        throw new IllegalStateException("row " + rows + " garbled");
                    }
                }
                print("big_rows", rows);
                print("big_sum", sum);
            }
            try (ResultSet rs = st.executeQuery("SELECT * FROM no_such_table")) {
                print("error_code", "none");
            } catch (SQLException e) {
                print("error_code", e.getErrorCode());
            }
        }
    }

    private static String one(Statement st, String sql) throws SQLException {
        try (ResultSet rs = st.executeQuery(sql)) {
            rs.next();
            return rs.getString(1);
        }
    }

    private static void print(String key, Object value) {
        System.out.println(key + "=" + value);
    }
}
