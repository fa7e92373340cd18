// A JVM TLS client, run with the JDK's source launcher (`java TlsClient.java ...`): connects to
// HOST:PORT verifying the server (host name included) against a PKCS#12 truststore, presenting
// the key of a PKCS#12 keystore when one is given, sends one HTTP request and prints the
// status line and the server certificate's serial. Passwords are read from files, never
// taken as arguments.
//
//   java TlsClient.java HOST PORT TRUSTSTORE TRUSTSTORE_PASSWORD_FILE [KEYSTORE KEYSTORE_PASSWORD_FILE]
//
// Exit 0 with "OK <status line> serial=<hex>", or 1 with the JSSE error.

import java.io.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import javax.net.ssl.*;

public class TlsClient {
    static char[] password(String file) throws IOException {
        return Files.readString(Path.of(file), StandardCharsets.UTF_8).strip().toCharArray();
    }

    static KeyStore load(String file, char[] password) throws Exception {
        KeyStore store = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(Path.of(file))) {
            store.load(in, password);
        }
        return store;
    }

    public static void main(String[] args) throws Exception {
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(load(args[2], password(args[3])));
        KeyManager[] keys = null;
        if (args.length > 5) {
            char[] pass = password(args[5]);
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(load(args[4], pass), pass);
            keys = kmf.getKeyManagers();
        }
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(keys, tmf.getTrustManagers(), null);
        try (SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket(host, port)) {
            socket.setSoTimeout(10_000);
            SSLParameters params = socket.getSSLParameters();
            params.setEndpointIdentificationAlgorithm("HTTPS");
            socket.setSSLParameters(params);
            socket.startHandshake();
            X509Certificate leaf = (X509Certificate) socket.getSession().getPeerCertificates()[0];
            OutputStream out = socket.getOutputStream();
            out.write(("GET / HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.US_ASCII));
            String status = in.readLine();
            if (status == null || !status.startsWith("HTTP/1.1 ")) {
                System.err.println("no HTTP answer: " + status);
                System.exit(1);
            }
            System.out.println("OK " + status + " serial=" + leaf.getSerialNumber().toString(16));
        } catch (IOException e) {
            System.err.println(e);
            System.exit(1);
        }
    }
}
