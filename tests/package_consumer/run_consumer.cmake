# Installs the built strata into a scratch prefix, then configures and builds an outside project
# that uses find_package(strata) and one that uses pkg-config, and runs both.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${prefix}
                RESULT_VARIABLE status OUTPUT_QUIET)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "install failed: ${status}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package_consumer -B ${WORK_DIR}/build
                        -G Ninja -DCMAKE_PREFIX_PATH=${prefix} RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "configuring the consumer with find_package(strata) failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "building the consumer failed")
endif()
execute_process(COMMAND ${WORK_DIR}/build/consumer RESULT_VARIABLE status OUTPUT_VARIABLE out)
if(NOT status EQUAL 0 OR NOT out MATCHES "chunks=")
  message(FATAL_ERROR "the consumer did not run: ${status} ${out}")
endif()
execute_process(
  COMMAND sh -c "export PKG_CONFIG_PATH=$(dirname $(find ${prefix} -name strata.pc)) && c++ -std=c++20 ${SOURCE_DIR}/tests/package_consumer/consumer.cpp $(pkg-config --cflags --libs strata) -o ${WORK_DIR}/consumer_pc && ${WORK_DIR}/consumer_pc"
  RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT status EQUAL 0 OR NOT out MATCHES "chunks=")
  message(FATAL_ERROR "the pkg-config consumer failed: ${status} ${out} ${err}")
endif()
message(STATUS "find_package(strata) and pkg-config consumers built and ran")
