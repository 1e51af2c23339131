package com.example.features.jdbc;

import org.apache.flink.connector.jdbc.postgres.database.PostgresFactory;

/**
 * Lets Flink's JDBC connector write to PostgreSQL through AWS's Secrets Manager JDBC driver.
 *
 * <p>That driver (com.amazonaws.secretsmanager.sql.AWSSecretsManagerPostgreSQLDriver) reads the
 * password from the secret on each connect and again after a failed login, so a rotated password
 * reaches a running job. It only accepts URLs starting with {@code jdbc-secretsmanager:}, while the
 * connector picks its SQL dialect from the URL and knows PostgreSQL only as {@code jdbc:postgresql:}.
 * This factory gives such URLs the connector's own PostgreSQL dialect; nothing else changes.
 */
public class SecretsManagerPostgresFactory extends PostgresFactory {
    @Override
    public boolean acceptsURL(String url) {
        return url.startsWith("jdbc-secretsmanager:postgresql:");
    }
}
