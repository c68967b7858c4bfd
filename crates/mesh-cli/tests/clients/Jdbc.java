// pgjdbc's metadata calls and reads against `mesh serve`, as BI tools and
// IDEs make them. Run as a single-file program:
//   java -cp /usr/share/java/postgresql.jar Jdbc.java HOST PORT USER PASSWORD
// Prints one line per step: `step<TAB>ok<TAB>value` or `step<TAB>error<TAB>message`.
import java.sql.*;
import java.util.*;

public class Jdbc {
    interface Step { String run() throws Exception; }

    static void step(String name, Step s) {
        try {
            System.out.println(name + "\tok\t" + s.run());
        } catch (Exception e) {
            System.out.println(name + "\terror\t" + String.valueOf(e.getMessage()).replace('\n', ' '));
        }
    }

    static String rows(ResultSet rs, String... columns) throws SQLException {
        List<String> out = new ArrayList<>();
        while (rs.next()) {
            List<String> cells = new ArrayList<>();
            for (String c : columns) cells.add(String.valueOf(rs.getObject(c)));
            out.add(String.join("|", cells));
        }
        return String.join(";", out);
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/mesh";
        Properties p = new Properties();
        p.setProperty("user", args[2]);
        p.setProperty("password", args[3]);
        p.setProperty("connectTimeout", "30");
        p.setProperty("socketTimeout", "120");
        try (Connection c = DriverManager.getConnection(url, p)) {
            DatabaseMetaData md = c.getMetaData();
            step("product", () -> md.getDatabaseProductName() + " " + md.getDatabaseMajorVersion());
            step("schemas", () -> rows(md.getSchemas(), "TABLE_SCHEM"));
            step("tables", () -> rows(md.getTables(null, "sales", "%", new String[] {"TABLE"}), "TABLE_NAME", "REMARKS"));
            step("columns", () -> rows(md.getColumns(null, "sales", "order_lines", "%"),
                    "COLUMN_NAME", "TYPE_NAME", "COLUMN_SIZE", "DECIMAL_DIGITS", "IS_NULLABLE", "REMARKS"));
            step("primary_keys", () -> rows(md.getPrimaryKeys(null, "logistics", "carrier_performance"),
                    "COLUMN_NAME", "KEY_SEQ", "PK_NAME"));
            step("index_info", () -> rows(md.getIndexInfo(null, "sales", "orders", false, false),
                    "INDEX_NAME", "NON_UNIQUE", "COLUMN_NAME"));
            step("imported_keys", () -> rows(md.getImportedKeys(null, "sales", "orders"), "FKCOLUMN_NAME"));
            step("prepared", () -> {
                try (PreparedStatement ps = c.prepareStatement(
                        "SELECT count(*) AS n FROM sales.orders WHERE status = ?")) {
                    ps.setString(1, "confirmed");
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        return String.valueOf(rs.getLong("n") > 0);
                    }
                }
            });
            step("decimal", () -> {
                try (Statement s = c.createStatement();
                     ResultSet rs = s.executeQuery("SELECT amount FROM sales.order_lines ORDER BY line_id LIMIT 1")) {
                    ResultSetMetaData m = rs.getMetaData();
                    rs.next();
                    return m.getColumnTypeName(1) + "|" + rs.getBigDecimal(1).scale();
                }
            });
            step("nested", () -> {
                try (Statement s = c.createStatement();
                     ResultSet rs = s.executeQuery(
                         "SELECT make_array(1, 2, 3) AS l, named_struct('a', 1, 'b', 'x') AS s")) {
                    rs.next();
                    Array l = rs.getArray("l");
                    Object[] values = (Object[]) l.getArray();
                    return values.length + "|" + rs.getString("s");
                }
            });
        }
    }
}
