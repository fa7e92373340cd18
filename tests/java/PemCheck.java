// Loads a PEM certificate chain and a PKCS#8 PEM key the way Elasticsearch and Neo4j do (JDK
// CertificateFactory, PKCS8EncodedKeySpec), proves the key signs for the leaf, and validates
// the chain against the CA file with the JDK's PKIX validator. Run with the source launcher:
//
//   java PemCheck.java CHAIN.pem KEY.pem CA.pem
//
// Exit 0 with "OK <key algorithm> <leaf subject>", or 1 with the reason.

import java.io.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.security.*;
import java.security.cert.*;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.*;

public class PemCheck {
    static List<X509Certificate> certs(String file) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        try (InputStream in = Files.newInputStream(Path.of(file))) {
            List<X509Certificate> out = new ArrayList<>();
            for (java.security.cert.Certificate c : cf.generateCertificates(in)) out.add((X509Certificate) c);
            return out;
        }
    }

    static PrivateKey key(String file) throws Exception {
        String text = Files.readString(Path.of(file), StandardCharsets.US_ASCII);
        if (!text.contains("-----BEGIN PRIVATE KEY-----")) throw new IllegalArgumentException("not a PKCS#8 PEM key");
        String body = text.replaceAll("-----(BEGIN|END) PRIVATE KEY-----", "").replaceAll("\\s", "");
        PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(Base64.getDecoder().decode(body));
        for (String alg : new String[] {"EC", "RSA", "Ed25519"}) {
            try {
                return KeyFactory.getInstance(alg).generatePrivate(spec);
            } catch (Exception e) {
                // next algorithm
            }
        }
        throw new IllegalArgumentException("no JDK key factory reads this key");
    }

    static String signatureFor(PrivateKey k) {
        switch (k.getAlgorithm()) {
            case "EC": return "SHA256withECDSA";
            case "RSA": return "SHA256withRSA";
            default: return "Ed25519";
        }
    }

    public static void main(String[] args) {
        try {
            List<X509Certificate> chain = certs(args[0]);
            PrivateKey k = key(args[1]);
            byte[] data = "pki key check".getBytes(StandardCharsets.UTF_8);
            Signature s = Signature.getInstance(signatureFor(k));
            s.initSign(k);
            s.update(data);
            byte[] sig = s.sign();
            Signature v = Signature.getInstance(signatureFor(k));
            v.initVerify(chain.get(0).getPublicKey());
            v.update(data);
            if (!v.verify(sig)) throw new IllegalStateException("the key does not match the leaf");
            Set<TrustAnchor> anchors = new HashSet<>();
            for (X509Certificate ca : certs(args[2])) anchors.add(new TrustAnchor(ca, null));
            PKIXParameters params = new PKIXParameters(anchors);
            params.setRevocationEnabled(false);
            CertPath path = CertificateFactory.getInstance("X.509").generateCertPath(chain);
            CertPathValidator.getInstance("PKIX").validate(path, params);
            System.out.println("OK " + k.getAlgorithm() + " " + chain.get(0).getSubjectX500Principal());
        } catch (Exception e) {
            System.err.println(e);
            System.exit(1);
        }
    }
}
